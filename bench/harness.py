"""What every user-path benchmark does: scaffold a package with ``oso-new-source``, install it, run the command a
user types, and read the replication step's time from Dagster's own step stats (not a clock around the command).

Each command runs in a scratch OSO_HOME (``isolation.bench_env``) with its own DAGSTER_HOME, so the run's event
log survives the command and nothing touches the user's warehouse or instance.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from isolation import bench_env

BIN = Path(sys.executable).parent
STEP_STATS = """
import json
from dagster import DagsterInstance
instance = DagsterInstance.get()
run = instance.get_runs(limit=1)[0]
steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run.run_id)}
print(json.dumps({"status": run.status.value, "steps": steps}))
"""


@dataclass
class Timed:
    """One command's wall seconds, peak RSS of its largest process, and what it printed."""

    seconds: float
    max_rss_kb: int
    stdout: str
    stderr: str
    returncode: int


def run_timed(command: list[str], env: dict[str, str], cwd: str | Path | None = None) -> Timed:
    """Run ``command``; ``wait4`` gives the peak RSS of its process tree's largest member (children included)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Timed(seconds, usage.ru_maxrss, out.read(), err.read(), proc.returncode)


def check(result: Timed, what: str) -> Timed:
    if result.returncode != 0:
        sys.exit(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@dataclass
class UserPath:
    """A scratch home holding one scaffolded, installed source package and its warehouse."""

    source: str
    secret_url: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oso_bench_user_")))

    @property
    def env(self) -> dict[str, str]:
        home = self.root / "oso_home"
        dagster_home = self.root / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        # The package first, then an inherited PYTHONPATH (a worktree's plugin/ under test stays in front of the
        # environment's installed oso_dagster).
        path = os.pathsep.join(p for p in [str(self.root / "site"), os.environ.get("PYTHONPATH", "")] if p)
        env = bench_env(home, PYTHONPATH=path, DAGSTER_HOME=str(dagster_home), RUNTIME__LOG_LEVEL="WARNING")
        env[f"DAGSTER__{self.source.upper()}__DB_CONNECTION_STRING"] = self.secret_url
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def scaffold(self, options: list[str], edit: Callable[[Path], None] | None = None) -> Timed:
        """``oso-new-source SOURCE --database-url URL --no-input ...`` then install the package (no deps);
        ``edit`` gets the package's folder before it is installed (a change the user would make by hand)."""
        out = self.root / "packages"
        out.mkdir(exist_ok=True)
        command = [str(BIN / "oso-new-source"), self.source, "--database-url", self.secret_url, "--output-dir",
                   str(out), "--no-input", *options]
        scaffold = check(run_timed(command, self.env), "oso-new-source")
        if edit is not None:
            edit(out / f"oso-source-{self.source}")
        uv = shutil.which("uv")
        base = [uv, "pip", "install", "--python", sys.executable] if uv else [sys.executable, "-m", "pip", "install"]
        check(run_timed([*base, "--no-deps", "--no-build-isolation", "--target", str(self.root / "site"),
                         str(out / f"oso-source-{self.source}")], self.env), "installing the package")
        return scaffold

    def list_assets(self) -> Timed:
        return check(run_timed([str(BIN / "dagster"), "asset", "list", "-m", "oso_dagster.definitions"], self.env),
                     "dagster asset list")

    def materialize(self, select: str) -> dict[str, float]:
        """The user's command; returns its wall seconds, the replication step's seconds and peak RSS."""
        command = [str(BIN / "dagster"), "asset", "materialize", "-m", "oso_dagster.definitions", "--select", select]
        result = check(run_timed(command, self.env), f"`{shlex.join(command[1:])}`")
        stats = check(run_timed([sys.executable, "-c", STEP_STATS], self.env), "reading step stats")
        steps = json.loads(stats.stdout.strip().splitlines()[-1])["steps"]
        replication = {k: v for k, v in steps.items() if k.startswith("replicate_")}  # sql_assets' op names
        return {"command": result.seconds, "step": sum(replication.values()), "max_rss_kb": result.max_rss_kb,
                "steps": steps}

    def count(self, table: str) -> int:
        """Rows of ``table`` in the warehouse (read-only, after the run released the file)."""
        import duckdb

        with duckdb.connect(self.env["OSO_DUCKDB_PATH"], read_only=True) as con:
            (schema,) = con.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = ? AND table_schema LIKE ?",
                [table, f"%{self.source}%"],
            ).fetchone()
            return con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def print_table(rows: list[tuple[str, int | None, dict | str]], floor_seconds: float | None,
                floor_rows: int | None = None) -> None:
    """One markdown table: step and whole-command seconds, each as a ratio to the floor, and peak RSS.

    A row's third item is the measurement (``step``, ``command``, ``max_rss_kb``; peers have only ``command``)
    or, for a peer that could not run, the reason. A row over fewer rows than the floor (dlt's slice) is compared
    per row.
    """
    print()
    print("| run | rows | step s | step x floor | command s | command x floor | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    for label, count, r in rows:
        scale = (floor_rows / count) if floor_rows and count else 1.0

        def ratio(seconds: float | None, scale: float = scale) -> str:
            return f"{seconds * scale / floor_seconds:.2f}x" if seconds is not None and floor_seconds else ""

        shown = f"{count:,}" if count is not None else ""
        if isinstance(r, str):
            print(f"| {label} | {shown} | {r} | | | | |")
            continue
        step, command = r.get("step"), r.get("command")
        cell = f"{step:.2f}" if step is not None else ""
        rss = f"{r['max_rss_kb'] / 1024:,.0f} MB" if r.get("max_rss_kb") else ""
        print(f"| {label} | {shown} | {cell} | {ratio(step)} | {command:.2f} | {ratio(command)} | {rss} |")


def print_command() -> None:
    """The command that produced the table (script relative to the repository, passwords masked)."""
    args = list(sys.argv[1:])
    for i, arg in enumerate(args[:-1]):
        if arg in ("--admin-url", "--url"):
            args[i + 1] = _masked(args[i + 1])
    print("\ncommand: " + shlex.join(["python", f"bench/{Path(sys.argv[0]).name}", *args]))


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
