"""SQLite full refresh through ``sql_assets`` (every value checked against its declared type) against the floor.

Creates a SQLite file with ROWS rows of seven typed columns (INTEGER x2, TEXT, DECIMAL(12,2), REAL, DATETIME,
BOOLEAN), then times, each in its own process:

  floor    Python's sqlite3 reading every row (no conversion): what any Python reader pays at least
  ours     dagster.materialize([sql_assets(...)]) into a fresh DuckDB (checks, Arrow, direct DuckDB load)

    python bench/sqlite_values.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from isolation import bench_env

COLUMNS = ("id INTEGER PRIMARY KEY, user_id INTEGER, kind TEXT, amount DECIMAL(12,2), ratio REAL, at DATETIME, "
           "ok BOOLEAN")


def prepare(path: Path, rows: int) -> None:
    if path.exists():
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT count(*) FROM events").fetchone()[0] == rows:
                return
        path.unlink()
    print(f"creating {path} with {rows:,} rows ...", flush=True)
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE events ({COLUMNS})")
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((i, i % 1000, f"kind {i % 7}", (i % 100_000) / 100, i / 7,
          f"2024-01-01 10:{i % 60:02d}:00.{i % 1_000_000:06d}", i % 2) for i in range(rows)),
    )
    conn.commit()
    conn.close()


def child_floor(path: str) -> dict[str, float]:
    started = time.monotonic()
    with sqlite3.connect(path) as conn:
        rows = sum(1 for _ in conn.execute("SELECT * FROM events"))
    return {"seconds": time.monotonic() - started, "rows": rows}


def child_ours(path: str) -> dict[str, float]:
    os.environ["DAGSTER__BENCH__DB_CONNECTION_STRING"] = f"sqlite:///{path}"
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dagster
    from oso_dagster import SecretReference, sql_assets

    assets = sql_assets("bench", SecretReference(group_name="bench", key="db_connection_string"),
                        [{"table": "events"}])
    started = time.monotonic()
    result = dagster.materialize([assets], instance=dagster.DagsterInstance.ephemeral())
    seconds = time.monotonic() - started
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {"seconds": seconds, "rows": event.materialization.metadata["rows_loaded"].value}


def measure(kind: str, path: Path) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="oso_bench_")
    try:
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--path", str(path)], check=True,
                             capture_output=True, text=True, env=bench_env(home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--path", default=str(Path(tempfile.gettempdir()) / "oso_bench_sqlite.db"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps((child_floor if args.child == "floor" else child_ours)(args.path)))
        return
    path = Path(args.path)
    prepare(path, args.rows)
    floor = measure("floor", path)
    ours = measure("ours", path)
    assert ours["rows"] == floor["rows"] == args.rows, (ours, floor)
    print()
    print("| run | rows | seconds | rows/s | x floor |")
    print("|---|---:|---:|---:|---:|")
    for name, run in (("sqlite3 read (floor)", floor), ("sql_assets, values checked, Dagster end to end", ours)):
        print(f"| {name} | {run['rows']:,} | {run['seconds']:.2f} | {run['rows'] / run['seconds']:,.0f} | "
              f"{run['seconds'] / floor['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
