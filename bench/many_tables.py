"""Many small tables on the user's path: what a sync costs when little changed (issue 16's schema).

Builds N tables ``t_0001`` ... in a scratch PostgreSQL database (50 rows each: ``id`` primary key, ``name text``,
``amount numeric(12,2)``, ``updated_at timestamptz not null``, which ``oso-new-source`` picks as the cursor) plus
``wide``, 300 ``int`` columns and 1,000 rows (full refresh), then times in a scratch OSO_HOME and DAGSTER_HOME:

  scaffold          oso-new-source many --database-url ... --no-input (then the package is installed)
  definitions load  dagster asset list -m oso_dagster.definitions (cold: dbt parse; then warm)
  first sync        dagster asset materialize -m oso_dagster.definitions --select '*'
  no-change sync    the same command again, nothing changed in the source
  1 table changed   5 rows of t_0001 updated, --select 'key:many/*' (replication only)

Each sync is reported as the replication step (Dagster's step stats), the other steps, and the whole command,
with peak RSS; the rows landed are counted in the warehouse.

    python bench/many_tables.py --tables 200
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import sqlalchemy as sa
from harness import UserPath, print_command
from sources import _create_database, psql

SOURCE_NAME = "many"
ROWS_PER_TABLE = 50
WIDE_ROWS = 1000
WIDE_COLUMNS = 300

# issue 16's figures for 200 tables (whole command, s) and its targets, by the start of each row's label
ISSUE_FIGURES: dict[str, tuple[float, str]] = {
    "definitions load": (13.3, ""),
    "first sync": (90.0, "command <= 30 s"),
    "no-change sync": (94.0, "replication step <= 5 s, command <= 15 s"),
    "1 table changed (5 rows)": (50.0, ""),
}


def prepare(admin_url: str, database: str, tables: int) -> str:
    """(Re)create the schema: N small incremental tables and one wide full-refresh table."""
    url = _create_database(admin_url, database)
    print(f"creating {tables} tables x {ROWS_PER_TABLE} rows and a {WIDE_COLUMNS}-column table in {database} ...",
          flush=True)
    wide_columns = ", ".join(f"c{i:03d} int" for i in range(1, WIDE_COLUMNS))
    wide_values = ", ".join(f"i + {i}" for i in range(1, WIDE_COLUMNS))
    sql = f"""
        DROP SCHEMA public CASCADE; CREATE SCHEMA public;
        DO $$ BEGIN FOR t IN 1..{tables} LOOP
            EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, name text, amount numeric(12,2),
                            updated_at timestamptz NOT NULL)', lpad(t::text, 4, '0'));
            EXECUTE format('INSERT INTO t_%s SELECT i, ''name '' || i, i * 1.25,
                            timestamptz ''2024-01-01 00:00:00+00'' + i * interval ''1 minute''
                            FROM generate_series(1, {ROWS_PER_TABLE}) i', lpad(t::text, 4, '0'));
        END LOOP; END $$;
        CREATE TABLE wide (id int PRIMARY KEY, {wide_columns});
        INSERT INTO wide SELECT i, {wide_values} FROM generate_series(1, {WIDE_ROWS}) i;
        ANALYZE;
    """
    subprocess.run([*psql(url), "-c", sql], check=True)
    return url


def change_one_table(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE t_0001 SET amount = amount + 1, updated_at = now() WHERE id <= 5"))
    engine.dispose()


def landed(user: UserPath, tables: int) -> int:
    """Rows in the warehouse over every replicated table (what the source holds: N x 50 + 1,000)."""
    import duckdb

    with duckdb.connect(user.env["OSO_DUCKDB_PATH"], read_only=True) as con:
        (schema,) = con.execute(  # the dataset (not dlt's <dataset>_staging) is where the full-refresh table is
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'wide' AND table_schema LIKE ?",
            [f"%{SOURCE_NAME}%"]).fetchone()
        found = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema = ? AND (table_name LIKE 't\\_%' ESCAPE '\\' OR table_name = 'wide')",
            [schema]).fetchall()
        return sum(con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=3, help="small tables (the issue's sizes: 200 and 1000)")
    parser.add_argument("--admin-url", default=os.environ.get(
        "OSO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--database", default=None, help="scratch database (default oso_bench_many_<tables>)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch home (package, warehouse, logs)")
    parser.add_argument("--load-only", action="store_true",
                        help="stop after the definitions load (scaffold and dagster asset list): the 1,000-table case")
    args = parser.parse_args()

    url = prepare(args.admin_url, args.database or f"oso_bench_many_{args.tables}", args.tables)
    expected = args.tables * ROWS_PER_TABLE + WIDE_ROWS
    user = UserPath(SOURCE_NAME, url)
    results: list[tuple[str, int | None, dict]] = []
    try:
        scaffold = user.scaffold([])
        results.append(("scaffold: oso-new-source", None, {"command": scaffold.seconds,
                                                                      "max_rss_kb": scaffold.max_rss_kb}))
        listed = user.list_assets()
        assets = len([line for line in listed.stdout.splitlines() if line.strip()])
        results.append((f"definitions load, cold: dagster asset list ({assets} assets)", None,
                        {"command": listed.seconds, "max_rss_kb": listed.max_rss_kb}))
        warm = user.list_assets()
        results.append(("definitions load, warm", None, {"command": warm.seconds, "max_rss_kb": warm.max_rss_kb}))
        syncs = () if args.load_only else (("first sync, --select '*'", "*", False),
                                      ("no-change sync, --select '*'", "*", False),
                                      ("1 table changed (5 rows), --select 'key:many/*'", f"key:{SOURCE_NAME}/*",
                                       True))
        for label, select, change in syncs:
            if change:
                change_one_table(url)
            run = user.materialize(select)
            run["other"] = sum(run["steps"].values()) - run["step"]
            count = landed(user, args.tables)
            if count != expected:
                sys.exit(f"{label}: the warehouse holds {count:,} rows, the source {expected:,}")
            results.append((label, count, run))
            print(f"{label}: command {run['command']:.1f}s, steps (s) {run['steps']}", flush=True)
    finally:
        if args.keep:
            print(f"scratch home kept: {user.root}")
        else:
            user.close()

    print(f"\n{args.tables} tables x {ROWS_PER_TABLE} rows + 1 table x {WIDE_COLUMNS} columns x {WIDE_ROWS:,} rows")
    print("\n| run | rows in warehouse | replication step s | other steps s | command s | peak RSS "
          "| issue 16 command s | x issue | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, count, r in results:
        shown = f"{count:,}" if count is not None else ""
        step = f"{r['step']:.2f}" if "step" in r else ""
        other = f"{r['other']:.2f}" if "other" in r else ""
        issue, target = ISSUE_FIGURES.get(label.split(",")[0].split(":")[0], (None, ""))
        ratio = f"{r['command'] / issue:.2f}" if issue else ""
        print(f"| {label} | {shown} | {step} | {other} | {r['command']:.2f} | {r['max_rss_kb'] / 1024:,.0f} MB "
              f"| {issue or ''} | {ratio} | {target} |")
    print_command()


if __name__ == "__main__":
    main()
