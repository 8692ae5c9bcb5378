"""A chunked snapshot killed at ~50 % and resumed, against an uninterrupted run and the database's export floor.

Builds ``bench_events`` (bench/sources.py) in PostgreSQL, MariaDB or SQLite, then in scratch OSO_HOMEs:

  uninterrupted  one full snapshot with ``snapshot_chunk_rows`` (per ``--parallelism`` value: 1, 2, 4)
  killed         the same, SIGKILLed once about half of its chunks are committed (read from its log)
  resume         a normal run after the kill: must read only the unfinished chunks

Each run is a real process running ``dagster.materialize`` on ``sql_assets`` (what a scheduled run does);
peak RSS is that process's (``wait4``). The warehouse is then compared with the source (count, key sum).

    python bench/resume.py --source postgres --rows 5000000
    python bench/resume.py --source mysql --rows 1000000 --chunk-rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import sources
import sqlalchemy as sa
from isolation import bench_env
from peers import floor

ADMIN = {"postgres": os.environ.get("OSO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
         "mysql": os.environ.get("OSO_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")}
NAME = "chunk_bench"
PROGRESS = re.compile(r"bench_events: (\d+) of (\d+) chunks(?:, ([\d,]+) rows)?")
CHILD = """
import json, sys, dagster
from oso_dagster import SecretReference, sql_assets
spec = json.loads(sys.argv[1])
assets = sql_assets(spec["name"], SecretReference(group_name=spec["name"], key="db_connection_string"),
                    [{"table": "bench_events", "snapshot_chunk_rows": spec["chunk_rows"],
                      "snapshot_parallelism": spec["parallelism"]}], retries=0)
result = dagster.materialize([assets], instance=dagster.DagsterInstance.ephemeral(), raise_on_error=False)
print("SUCCESS" if result.success else "FAILED", flush=True)
sys.exit(0 if result.success else 1)
"""


def run(url: str, home: Path, chunk_rows: int, parallelism: int, kill_at: float | None) -> dict[str, float]:
    """One run; with ``kill_at`` SIGKILLed once that fraction of chunks is committed."""
    env = bench_env(home)
    env[f"DAGSTER__{NAME.upper()}__DB_CONNECTION_STRING"] = url
    spec = json.dumps({"name": NAME, "chunk_rows": chunk_rows, "parallelism": parallelism})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, spec], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines, killed, rows_read = [], False, 0
    for line in proc.stdout:
        lines.append(line)
        match = PROGRESS.search(line)
        if match:
            rows_read = int((match[3] or "0").replace(",", "")) or rows_read
            if kill_at is not None and int(match[1]) >= kill_at * int(match[2]) and int(match[1]) < int(match[2]):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if kill_at is not None and not killed:
        sys.exit("the run ended before it could be killed:\n" + "".join(lines)[-3000:])
    if kill_at is None and os.waitstatus_to_exitcode(status) != 0:
        sys.exit("the run failed:\n" + "".join(lines)[-5000:])
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "rows_read": rows_read}


def warehouse_state(home: Path) -> tuple[int, int]:
    """(committed chunks, rows in them) of the unfinished snapshot."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT count(*), coalesce(sum(rows), 0) FROM {NAME}._oso_snapshot_chunks "
                           "WHERE state = 'done'").fetchone()


def check_exact(url: str, home: Path) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        expected = tuple(conn.execute(sa.text(
            f"SELECT count(*), sum(id), sum(amount) FROM {sources.TABLE}")).one())
    engine.dispose()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        landed = con.execute(f"SELECT count(*), sum(id), sum(amount) FROM {NAME}.{sources.TABLE}").fetchone()
    if tuple(int(v) if i < 2 else round(float(v), 2) for i, v in enumerate(landed)) != tuple(
            int(v) if i < 2 else round(float(v), 2) for i, v in enumerate(expected)):
        sys.exit(f"warehouse {landed} differs from source {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["postgres", "mysql", "sqlite"], default="postgres")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--parallelism", default="1,2,4", help="uninterrupted runs, comma separated")
    parser.add_argument("--resume-parallelism", type=int, default=1)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="oso_bench_resume_"))
    if args.source == "sqlite":
        source = sources.prepare_sqlite(Path(tempfile.gettempdir()) / f"oso_bench_{args.rows}.sqlite", args.rows, 1)
    else:
        prepare = sources.prepare_postgres if args.source == "postgres" else sources.prepare_mysql
        source = prepare(ADMIN[args.source], "oso_bench_resume", args.rows, 1)
    floor_s = floor(source).seconds
    table: list[tuple[str, str, str, str, str]] = []
    base = None
    for parallelism in [int(p) for p in args.parallelism.split(",") if p]:
        home = scratch / f"full_{parallelism}"
        result = run(source.url, home, args.chunk_rows, parallelism, None)
        check_exact(source.url, home)
        base = base or result["seconds"]
        table.append((f"uninterrupted, parallelism {parallelism}", f"{result['seconds']:.1f}",
                      f"{result['rows_read']:,}", f"{result['rss_mb']:.0f}", f"{result['seconds'] / floor_s:.1f}x"))
    home = scratch / "killed"
    killed = run(source.url, home, args.chunk_rows, args.resume_parallelism, 0.5)
    done, committed = warehouse_state(home)
    resumed = run(source.url, home, args.chunk_rows, args.resume_parallelism, None)
    check_exact(source.url, home)
    reread = resumed["rows_read"] - (args.rows - committed)
    table.append((f"killed at ~50% ({done} chunks committed)", f"{killed['seconds']:.1f}", f"{committed:,} kept",
                  f"{killed['rss_mb']:.0f}", ""))
    table.append(("resume", f"{resumed['seconds']:.1f}", f"{resumed['rows_read']:,} (re-read {reread:,})",
                  f"{resumed['rss_mb']:.0f}", f"{resumed['seconds'] / floor_s:.1f}x"))
    total = killed["seconds"] + resumed["seconds"]
    table.append(("killed + resume", f"{total:.1f}", "", "", f"{total / floor_s:.1f}x; {total / (base or 1):.2f}x "
                  "the uninterrupted run"))
    floor_name = {"postgres": "psql \\copy to /dev/null", "mysql": "mariadb --quick", "sqlite": "python sqlite3"}
    print(f"\n{args.source}, {args.rows:,} rows, snapshot_chunk_rows {args.chunk_rows:,}, "
          f"floor {floor_s:.2f}s ({floor_name[args.source]})")
    print("| run | seconds | rows read | peak RSS MB | vs floor |\n|---|---:|---:|---:|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print("\ncommand: python bench/resume.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
