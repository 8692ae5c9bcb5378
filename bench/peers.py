"""The floors and the peers measured beside ``sql_assets`` in the same run.

Floors: ``psql \\copy (select ...) to /dev/null (format binary)``, ``mariadb --quick --batch --skip-column-names``
into /dev/null, Python's ``sqlite3`` reading every row.

Peers live in a bench-only venv (default ``~/.cache/oso-bench/peers``, never the project's dependencies): Sling (PyPI
``sling-linux-amd64``) driving the DuckDB 1.5.5 CLI (PyPI ``duckdb-cli``, with the json and parquet extensions,
since DuckDB cannot download anything here), and DuckDB 1.5.5's own postgres/mysql/sqlite scanner extensions
(``CREATE TABLE AS SELECT * FROM`` the attached source). A peer that cannot be set up raises ``Unavailable``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Timed, run_timed
from isolation import bench_env
from sources import COLUMNS, TABLE, Source, mariadb, psql

DUCKDB = "1.5.5"
CACHE = Path(os.environ.get("OSO_BENCH_CACHE", Path.home() / ".cache" / "oso-bench"))
PEER_PACKAGES = [f"duckdb=={DUCKDB}", f"duckdb-cli=={DUCKDB}", "sling-linux-amd64",
                 *(f"duckdb-extension-{e}=={DUCKDB}" for e in
                   ("json", "parquet", "postgres-scanner", "mysql-scanner", "sqlite-scanner"))]
SCANNER = {"postgres": "postgres_scanner", "mysql": "mysql_scanner", "sqlite": "sqlite_scanner"}


class Unavailable(Exception):
    """A peer that cannot run here; its row says why instead of stopping the benchmark."""


def floor(source: Source, table: str = TABLE) -> Timed:
    """What the server (or file) hands out at best over one connection, no conversion."""
    if source.kind == "postgres":
        query = f"\\copy (SELECT {COLUMNS} FROM {table}) TO '/dev/null' (FORMAT binary)"
        command = [*psql(source.url), "-c", query]
    elif source.kind == "mysql":
        command = ["sh", "-c", " ".join([*mariadb(source.url), "--quick", "--batch", "--skip-column-names", "-e",
                                         f"'SELECT {COLUMNS} FROM {table}'", "> /dev/null"])]
    else:
        path = source.parts.database
        command = [sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({path!r}); "
                   f"n = sum(1 for _ in c.execute('SELECT {COLUMNS} FROM {table}')); print(n)"]
    result = run_timed(command, bench_env(tempfile.gettempdir()))
    if result.returncode:
        raise RuntimeError(f"floor failed: {result.stderr[-2000:]}")
    return result


def _peer_python() -> Path:
    venv = CACHE / "peers"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists():
        return python
    uv = shutil.which("uv")
    if not uv:
        raise Unavailable("uv not found to build the bench-only venv")
    steps = [[uv, "venv", "-q", "--python", "3.11", str(venv)],
             [uv, "pip", "install", "-q", "--python", str(python), *PEER_PACKAGES]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode:
            raise Unavailable(f"`{' '.join(step[:3])} ...` failed: {done.stderr.strip().splitlines()[-1:]}")
    marker.touch()
    return python


def _site(python: Path) -> Path:
    (site,) = (python.parent.parent / "lib").glob("python3*/site-packages")
    return site


def _sling_home() -> tuple[Path, Path]:
    """A HOME for Sling holding the DuckDB CLI and extensions where Sling and DuckDB look for them."""
    python = _peer_python()
    site = _site(python)
    binary = site / "sling_linux_amd64" / "bin" / "sling-linux-amd64"
    if not binary.exists():
        raise Unavailable(f"sling binary not found in {site}")
    home = CACHE / "sling-home"
    cli = home / ".sling" / "bin" / "duckdb" / DUCKDB / "duckdb"
    extensions = home / ".duckdb" / "extensions" / f"v{DUCKDB}" / "linux_amd64"
    if not cli.exists():
        cli.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(python.parent / "duckdb", cli)
    extensions.mkdir(parents=True, exist_ok=True)
    for name in ("json", "parquet"):
        found = site / f"duckdb_extension_{name}" / "extensions" / f"v{DUCKDB}" / f"{name}.duckdb_extension"
        if not (extensions / found.name).exists():
            shutil.copy2(found, extensions / found.name)
    return binary, home


def _sling_url(source: Source) -> tuple[str, str]:
    u = source.parts
    if source.kind == "postgres":
        return (f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{u.database}?sslmode=disable",
                f"public.{TABLE}")
    if source.kind == "mysql":
        return f"mysql://{u.username}@{u.host}:{u.port or 3306}/{u.database}", f"{u.database}.{TABLE}"
    return f"sqlite://{u.database}", f"main.{TABLE}"


def sling(source: Source, scratch: Path) -> dict[str, float]:
    """``sling run`` full refresh of the table into a fresh DuckDB file (named pipes: no httpfs here)."""
    binary, home = _sling_home()
    target = scratch / "sling.duckdb"
    src_url, stream = _sling_url(source)
    env = bench_env(scratch, HOME=str(home), DUCKDB_VERSION=DUCKDB, SLING_DISABLE_TELEMETRY="true", SRC=src_url,
                    DDB=json.dumps({"type": "duckdb", "instance": str(target), "copy_method": "named_pipes"}))
    command = [str(binary), "run", "--src-conn", "SRC", "--src-stream", stream, "--tgt-conn", "DDB",
               "--tgt-object", f"main.{TABLE}", "--mode", "full-refresh"]
    result = run_timed(command, env)
    if result.returncode:
        raise Unavailable(f"sling failed: {(result.stderr + result.stdout).strip().splitlines()[-1:]}")
    return {"command": result.seconds, "max_rss_kb": result.max_rss_kb, "rows": _duckdb_count(target)}


SCANNER_SCRIPT = """
import json, sys, time, duckdb
extension, kind, attach, relation, target = sys.argv[1:]
con = duckdb.connect(target)
con.execute(f"LOAD '{extension}'")
con.execute(f"ATTACH '{attach}' AS src (TYPE {kind}, READ_ONLY)")
started = time.monotonic()
con.execute(f"CREATE TABLE bench_events AS SELECT * FROM {relation}")
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "rows": con.sql("SELECT count(*) FROM bench_events").fetchone()[0]}))
"""


def duckdb_scanner(source: Source, scratch: Path) -> dict[str, float]:
    """DuckDB's own scanner: ``CREATE TABLE AS SELECT * FROM`` the attached source into a fresh file."""
    python = _peer_python()
    name = SCANNER[source.kind]
    extension = (_site(python) / f"duckdb_extension_{name}" / "extensions" / f"v{DUCKDB}"
                 / f"{name}.duckdb_extension")
    if not extension.exists():
        raise Unavailable(f"{extension.name} not installed")
    u = source.parts
    if source.kind == "postgres":
        attach = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
        relation = f"src.public.{TABLE}"
    elif source.kind == "mysql":
        attach = f"host={u.host} port={u.port or 3306} user={u.username} database={u.database}"
        relation = f"src.{TABLE}"
    else:
        attach, relation = u.database, f"src.{TABLE}"
    kind = {"postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}[source.kind]
    target = scratch / "scanner.duckdb"
    result = run_timed([str(python), "-c", SCANNER_SCRIPT, str(extension), kind, attach, relation, str(target)],
                       bench_env(scratch))
    if result.returncode:
        raise Unavailable(f"duckdb scanner failed: {result.stderr.strip().splitlines()[-1:]}")
    inner = json.loads(result.stdout.strip().splitlines()[-1])
    return {"step": inner["seconds"], "command": result.seconds, "max_rss_kb": result.max_rss_kb,
            "rows": inner["rows"]}


def _duckdb_count(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM main.{TABLE}").fetchone()[0]
