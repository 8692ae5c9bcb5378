"""How long the code location takes to load as source packages multiply.

Generates N source packages of T tables each with the real template (as ``oso-new-source --table ...``:
no database needed), installs them into a scratch folder on PYTHONPATH, and times in fresh interpreters:
  bare   python -c "import dagster, dagster_dbt, dagster_dlt"
  cold   loading oso_dagster.definitions with an empty OSO_HOME (dbt deps + parse)
  warm   loading it again (manifest reused)
Every source's secret points at a TCP listener that counts connections: loading must open none.

    python bench/load_defs.py --packages 50 --tables 10
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from isolation import bench_env
from oso_dagster.scaffold.answers import SourceSpec, TableSpec
from oso_dagster.scaffold.render import generate

BIN = Path(sys.executable).parent
LOAD = "from oso_dagster.definitions import defs; n = len(defs.resolve_asset_graph().get_all_asset_keys()); print(n)"


class ConnectionCounter:
    """A listener standing in for every source database; it only counts who knocks."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"command failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def install_all(packages: list[Path], target: Path) -> None:
    uv = shutil.which("uv")
    base = [uv, "pip", "install", "--python", sys.executable] if uv else [sys.executable, "-m", "pip", "install", "-q"]
    base.append("--no-build-isolation")
    subprocess.run([*base, "--no-deps", "--target", str(target), *map(str, packages)], check=True,
                   capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs of bare and warm (median is shown)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="oso-bench-load-"))
    counter = ConnectionCounter()
    try:
        out, site, home = scratch / "packages", scratch / "site", scratch / "oso_home"
        out.mkdir()
        site.mkdir()
        print(f"generating {args.packages} packages x {args.tables} tables in {scratch} ...", flush=True)
        started = time.perf_counter()
        packages = [
            generate(
                SourceSpec(name=f"src{i:03d}", secret_group=f"src{i:03d}",
                           tables=[TableSpec(name=f"table_{t:02d}") for t in range(args.tables)]),
                out,
            )
            for i in range(args.packages)
        ]
        install_all(packages, site)
        print(f"  generated and installed in {time.perf_counter() - started:.1f}s", flush=True)

        env = bench_env(home, PYTHONPATH=str(site))
        for i in range(args.packages):
            env[f"DAGSTER__SRC{i:03d}__DB_CONNECTION_STRING"] = f"postgresql://u:p@127.0.0.1:{counter.port}/db"
        bare = [timed([sys.executable, "-c", "import dagster, dagster_dbt, dagster_dlt"], env)[0]
                for _ in range(args.repeat)]
        cold, assets = timed([sys.executable, "-c", LOAD], env)
        warm = [timed([sys.executable, "-c", LOAD], env)[0] for _ in range(args.repeat)]
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    bare_s, warm_s = statistics.median(bare), statistics.median(warm)
    total_tables = args.packages * args.tables
    print(f"\n{args.packages} packages x {args.tables} tables = {total_tables} tables, {assets} assets\n")
    print("| load | seconds | ratio to bare import | target |")
    print("| --- | ---: | ---: | --- |")
    print(f"| bare `import dagster, dagster_dbt, dagster_dlt` | {bare_s:.2f} | 1.00 | |")
    print(f"| cold (empty OSO_HOME: dbt parse) | {cold:.2f} | {cold / bare_s:.2f} | <= 15 s at 500 tables |")
    print(f"| warm (manifest reused) | {warm_s:.2f} | {warm_s / bare_s:.2f} | <= 2x bare |")
    print(f"\ndatabase connections opened while loading: {counter.count} (target 0)")
    if counter.count:
        sys.exit(1)


if __name__ == "__main__":
    main()
