"""Replication throughput: ``sql_assets`` end to end through Dagster against the PostgreSQL COPY floor.

Creates ``bench_events`` (N rows) in a scratch PostgreSQL database with ``generate_series`` and times, each in
its own process so peak RSS is that job's alone:

  floor    psql \\copy (select ...) to /dev/null (format binary): what the server can hand out at best
  ours     dagster.materialize([sql_assets(...)]) into a fresh DuckDB: reflect, read, normalize, load
  dlt      the original system's configuration on a slice, as rows/s: dlt's ``sql_database`` with every
           default (SQLAlchemy backend, INSERT-statement load files) as a dagster-dlt ``@dlt_assets``
  ours-sa  sql_assets forced to backend="sqlalchemy" on the same slice (our pipeline, dlt's slowest reader)

    python bench/replicate.py --rows 5000000
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

from isolation import bench_env

TABLE = "bench_events"
COLUMNS = "id, user_id, kind, amount, happened_at, note"


def _psql(url: str) -> list[str]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return ["psql", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
            "-d", u.database or "postgres", "-v", "ON_ERROR_STOP=1", "-q"]


def prepare(admin_url: str, database: str, rows: int, slice_rows: int) -> str:
    """Create (or reuse, when it already holds ``rows`` rows) the scratch database and its tables."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        have = conn.execute(
            sa.text("SELECT (SELECT count(*) FROM pg_class WHERE relname = :t) > 0"), {"t": TABLE}
        ).scalar()
        count = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() if have else -1
        slice_count = (
            conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}_slice")).scalar()
            if conn.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname = :t"), {"t": f"{TABLE}_slice"})
            .scalar()
            else -1
        )
    engine.dispose()
    if count != rows or slice_count != min(slice_rows, rows):
        print(f"creating {TABLE} with {rows:,} rows ...", flush=True)
        started = time.monotonic()
        sql = f"""
            DROP TABLE IF EXISTS {TABLE}, {TABLE}_slice;
            CREATE UNLOGGED TABLE {TABLE} (
                id bigint PRIMARY KEY, user_id bigint NOT NULL, kind text NOT NULL,
                amount numeric(12,2) NOT NULL, happened_at timestamptz NOT NULL, note text);
            INSERT INTO {TABLE}
            SELECT i, (i * 7919) % 100000, (ARRAY['view','click','buy','refund'])[1 + i % 4],
                   round(((i * 37) % 1000000) / 100.0, 2),
                   timestamptz '2020-01-01 00:00:00+00' + (i * interval '1 second'),
                   CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || md5(i::text) END
            FROM generate_series(1::bigint, {rows}::bigint) AS i;
            CREATE UNLOGGED TABLE {TABLE}_slice (LIKE {TABLE} INCLUDING ALL);
            INSERT INTO {TABLE}_slice SELECT * FROM {TABLE} WHERE id <= {min(slice_rows, rows)};
        """
        vacuum = ["-c", f"VACUUM ANALYZE {TABLE}", "-c", f"VACUUM ANALYZE {TABLE}_slice"]
        subprocess.run([*_psql(url), "-c", sql, *vacuum], check=True)
        print(f"  created in {time.monotonic() - started:.1f}s", flush=True)
    return url


# --- children: each measurement runs in its own process ------------------------------------------------


def child_floor(url: str) -> dict[str, float]:
    query = f"\\copy (SELECT {COLUMNS} FROM {TABLE}) TO '/dev/null' (FORMAT binary)"
    started = time.monotonic()
    subprocess.run([*_psql(url), "-c", query], check=True)
    seconds = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "max_rss_kb": rss}


def child_materialize(url: str, table: str, backend: str) -> dict[str, float]:
    os.environ["DAGSTER__BENCH__DB_CONNECTION_STRING"] = url
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dagster
    from oso_dagster import SecretReference, sql_assets

    assets = sql_assets(
        "bench", SecretReference(group_name="bench", key="db_connection_string"),
        [{"table": table, "backend": backend}],
    )
    instance = dagster.DagsterInstance.ephemeral()
    started = time.monotonic()
    result = dagster.materialize([assets], instance=instance)
    seconds = time.monotonic() - started
    assert result.success
    (event,) = result.get_asset_materialization_events()
    rows = event.materialization.metadata["rows_loaded"].value
    used = event.materialization.metadata["backend"].value
    import duckdb

    with duckdb.connect(os.environ["OSO_DUCKDB_PATH"], read_only=True) as con:
        landed = con.sql(f"SELECT count(*) FROM bench.{table}").fetchall()[0][0]
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {"seconds": seconds, "rows": rows, "landed": landed, "backend": used, "max_rss_kb": rss}


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

    instance = dagster.DagsterInstance.ephemeral()
    started = time.monotonic()
    result = dagster.materialize([original], instance=instance)
    seconds = time.monotonic() - started
    assert result.success
    import duckdb

    with duckdb.connect(os.environ["OSO_DUCKDB_PATH"], read_only=True) as con:
        landed = con.sql(f"SELECT count(*) FROM bench.{table}").fetchall()[0][0]
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {"seconds": seconds, "rows": landed, "landed": landed, "backend": "sqlalchemy", "max_rss_kb": rss}


def measure(kind: str, url: str, *extra: str) -> dict[str, float]:
    """Run one measurement in a fresh interpreter with a fresh OSO_HOME; return what it printed."""
    home = tempfile.mkdtemp(prefix="oso_bench_")
    env = bench_env(home)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--url", url, *extra],
            check=True, capture_output=True, text=True, env=env,
        )
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stdout[-4000:] + exc.stderr[-4000:])
        raise
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--slice", type=int, default=200_000, help="rows read by dlt's sqlalchemy backend")
    parser.add_argument("--admin-url", default=os.environ.get("OSO_BENCH_POSTGRES_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--database", default=None, help="scratch database (default oso_bench_<rows>)")
    parser.add_argument("--backend", default="auto", help="backend for our run (default auto)")
    parser.add_argument("--skip-dlt", action="store_true", help="skip the slow dlt sqlalchemy baseline")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=TABLE, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "floor":
        print(json.dumps(child_floor(args.url)))
        return
    if args.child == "materialize":
        print(json.dumps(child_materialize(args.url, args.table, args.backend)))
        return
    if args.child == "dlt-default":
        print(json.dumps(child_dlt_default(args.url, args.table)))
        return

    database = args.database or f"oso_bench_{args.rows}"
    url = prepare(args.admin_url, database, args.rows, args.slice)
    slice_rows = min(args.slice, args.rows)
    measure("floor", url)  # warm the cache so every reader starts from the same place
    floor = measure("floor", url)
    ours = measure("materialize", url, "--table", TABLE, "--backend", args.backend)
    assert ours["landed"] == args.rows, ours
    results = [
        ("COPY floor (psql binary)", args.rows, floor),
        (f"sql_assets ({ours['backend']}), Dagster end to end", args.rows, ours),
    ]
    if not args.skip_dlt:
        ours_sa = measure("materialize", url, "--table", f"{TABLE}_slice", "--backend", "sqlalchemy")
        assert ours_sa["landed"] == slice_rows, ours_sa
        results.append(("sql_assets, backend=sqlalchemy, slice", slice_rows, ours_sa))
        original = measure("dlt-default", url, "--table", f"{TABLE}_slice")
        assert original["landed"] == slice_rows, original
        results.append(("dlt defaults (original system), slice", slice_rows, original))

    floor_rate = args.rows / floor["seconds"]
    print()
    print(f"| {'run':<44} | {'rows':>10} | {'seconds':>8} | {'rows/s':>10} | {'x floor':>8} | {'peak RSS':>9} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 10}|{'-' * 12}|{'-' * 10}|{'-' * 11}|")
    for label, rows, r in results:
        rate = rows / r["seconds"]
        print(f"| {label:<44} | {rows:>10,} | {r['seconds']:>8.2f} | {rate:>10,.0f} | "
              f"{floor_rate / rate:>7.2f}x | {r['max_rss_kb'] / 1024:>6.0f} MB |")
    if not args.skip_dlt:
        rate = args.rows / ours["seconds"]
        print(f"\nsql_assets is {rate / (slice_rows / original['seconds']):.0f}x faster than the original system "
              f"(dlt defaults) and {rate / (slice_rows / ours_sa['seconds']):.0f}x faster than its own pipeline on "
              "dlt's sqlalchemy backend (rows/s).")


if __name__ == "__main__":
    main()
