"""Replication on the user's path against the floor and the peers, in one run.

Builds ``bench_events`` (N rows: bigint key, bigint, text, decimal(12,2), timestamp, text with 10 % NULLs) in
PostgreSQL, MariaDB or SQLite, scaffolds ``oso-source-bench`` from it with ``oso-new-source`` (``--mode
incremental`` adds ``--incremental bench_events=happened_at``), installs it into a scratch folder on PYTHONPATH,
and runs ``dagster asset materialize -m oso_dagster.definitions --select 'key:bench/*'`` in a scratch OSO_HOME
and DAGSTER_HOME. Reported separately: the replication step (Dagster's step stats from the run's event log)
and the whole command (wall clock), with peak RSS. In the same run:

  floor        psql \\copy ... (format binary) / mariadb --quick --batch / Python sqlite3, into nothing
  sling        Sling (Go) into DuckDB 1.5.5 through the DuckDB CLI, full refresh
  duckdb scan  DuckDB 1.5.5's own scanner extension, CREATE TABLE AS SELECT * FROM the attached source
  dlt defaults the original system: dlt's sql_database with every default, as dagster-dlt assets, on a slice

``--change-pct 1`` (incremental) then changes 1 % of the rows and runs the same command again.

    python bench/replicate.py --source postgres --rows 5000000 --mode incremental --change-pct 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sources
from harness import UserPath, print_command, print_table
from isolation import bench_env
from peers import Unavailable, duckdb_scanner, floor, sling

SOURCE_NAME = "bench"
SELECT = f"key:{SOURCE_NAME}/*"
ADMIN = {"postgres": os.environ.get("OSO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
         "mysql": os.environ.get("OSO_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")}


def child_dlt_default(url: str, table: str) -> dict[str, float]:
    """What the system this project replaces ran: ``sql_database`` and a dlt pipeline with their defaults."""
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dagster
    import dlt
    from dagster_dlt import DagsterDltResource, dlt_assets
    from dlt.sources.sql_database import sql_database

    home = Path(os.environ["OSO_HOME"])
    pipeline = dlt.pipeline(
        pipeline_name="bench_default", pipelines_dir=str(home / "dlt"), dataset_name="bench",
        destination=dlt.destinations.duckdb(credentials=os.environ["OSO_DUCKDB_PATH"]),
    )

    @dlt_assets(dlt_source=sql_database(credentials=url, table_names=[table]), dlt_pipeline=pipeline)
    def original(context):
        yield from DagsterDltResource().run(context=context)

    started = time.monotonic()
    result = dagster.materialize([original], instance=dagster.DagsterInstance.ephemeral())
    seconds = time.monotonic() - started
    assert result.success
    import duckdb

    with duckdb.connect(os.environ["OSO_DUCKDB_PATH"], read_only=True) as con:
        landed = con.sql(f"SELECT count(*) FROM bench.{table}").fetchall()[0][0]
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"step": seconds, "rows": landed, "max_rss_kb": rss}


def dlt_default(url: str, table: str) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="oso_bench_")
    try:
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--child", "dlt-default", "--url", url, "--table", table],
                             check=True, capture_output=True, text=True, env=bench_env(home))
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["command"] = time.monotonic() - started
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def prepare(args: argparse.Namespace) -> sources.Source:
    if args.source == "sqlite":
        path = Path(args.path or Path(tempfile.gettempdir()) / f"oso_bench_{args.rows}.sqlite")
        return sources.prepare_sqlite(path, args.rows, args.slice)
    database = args.database or f"oso_bench_{args.rows}"
    admin = args.admin_url or ADMIN[args.source]
    prepare_db = sources.prepare_postgres if args.source == "postgres" else sources.prepare_mysql
    return prepare_db(admin, database, args.rows, args.slice)


def peer(label: str, rows: list, measure) -> None:
    """Append a peer's row, or its reason when it cannot run here."""
    scratch = Path(tempfile.mkdtemp(prefix="oso_bench_peer_"))
    try:
        result = measure(scratch)
        rows.append((label, result.get("rows"), result))
    except (Unavailable, OSError) as exc:
        rows.append((label, None, f"unavailable: {exc}"))
    except subprocess.CalledProcessError as exc:
        rows.append((label, None, f"failed: {(exc.stderr or '').strip().splitlines()[-1:]}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["postgres", "mysql", "sqlite"], default="postgres")
    parser.add_argument("--mode", choices=["replace", "incremental"], default="replace")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--change-pct", type=float, default=0.0,
                        help="incremental: after the first sync change this %% of rows and sync again")
    parser.add_argument("--slice", type=int, default=20_000, help="rows for dlt's defaults (the original system)")
    parser.add_argument("--admin-url", default=None,
                        help="admin URL of the server (default: OSO_BENCH_POSTGRES_URL / OSO_BENCH_MARIADB_URL "
                             "or the local service)")
    parser.add_argument("--database", default=None, help="scratch database (default oso_bench_<rows>)")
    parser.add_argument("--path", default=None, help="SQLite file (default <tmp>/oso_bench_<rows>.sqlite)")
    parser.add_argument("--no-peers", action="store_true", help="skip Sling and DuckDB's scanner")
    parser.add_argument("--skip-dlt", action="store_true", help="skip dlt's defaults (the original system)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch home (package, warehouse, logs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=sources.TABLE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "dlt-default":
        print(json.dumps(child_dlt_default(args.url, args.table)))
        return
    if args.change_pct and args.mode != "incremental":
        parser.error("--change-pct needs --mode incremental")

    source = prepare(args)
    floor(source)  # warm the cache so every reader starts from the same place
    base = floor(source)
    floor_label = {"postgres": "floor: psql \\copy binary", "mysql": "floor: mariadb --quick --batch",
                   "sqlite": "floor: Python sqlite3 read"}[source.kind]
    rows = [(floor_label, args.rows, {"command": base.seconds, "max_rss_kb": base.max_rss_kb})]

    user = UserPath(SOURCE_NAME, source.url)
    try:
        options = ["--table", sources.TABLE]
        if args.mode == "incremental":
            options += ["--incremental", f"{sources.TABLE}=happened_at"]
        scaffold = user.scaffold(options)
        print(f"oso-new-source: {scaffold.seconds:.2f}s", flush=True)
        first = user.materialize(SELECT)
        print(f"first sync steps (s): {first['steps']}", flush=True)
        landed = user.count(sources.TABLE)
        if landed != args.rows:
            sys.exit(f"sql_assets landed {landed:,} rows, the source has {args.rows:,}")
        rows.append((f"sql_assets {args.mode}, first sync (`dagster asset materialize`)", landed, first))
        if args.change_pct:
            changed = sources.change_rows(source, args.change_pct)
            again = user.materialize(SELECT)
            print(f"change sync steps (s): {again['steps']}", flush=True)
            rows.append((f"sql_assets incremental, {changed:,} rows changed ({args.change_pct}%)",
                         user.count(sources.TABLE), again))
    finally:
        if args.keep:
            print(f"scratch home kept: {user.root}")
        else:
            user.close()

    if not args.no_peers:
        peer("Sling full refresh (whole command)", rows, lambda scratch: sling(source, scratch))
        peer("DuckDB 1.5.5 scanner CTAS (step = CTAS, command = process)", rows,
             lambda scratch: duckdb_scanner(source, scratch))
    if not args.skip_dlt:
        peer("dlt defaults (original system), slice, ratios per row", rows,
             lambda scratch: dlt_default(source.url, f"{sources.TABLE}_slice"))

    print(f"\n{args.source}, {args.mode}, {args.rows:,} rows; ratios against the floor ({base.seconds:.2f}s)")
    print_table(rows, base.seconds, args.rows)
    print_command()


if __name__ == "__main__":
    main()
