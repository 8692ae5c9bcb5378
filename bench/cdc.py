"""Change data capture on the user's path: the first CDC sync, a catch-up after N changes and a no-change sync,
against a full refresh of the same N rows.

Starts throw-away servers with a change log (``tests/cdc/servers.py``: PostgreSQL with ``wal_level=logical``,
MariaDB with a ROW binlog) and builds ``bench_cdc`` in them (``id`` bigint primary key, ``name``
text/varchar(64), ``amount`` numeric(12,2), ``updated_at`` timestamp, ``qty`` int) with N rows. Then, as a user
would, in scratch OSO_HOMEs and DAGSTER_HOMEs: ``oso-new-source bench --table bench_cdc --no-input`` (for CDC
scaffolded with ``--cdc``), the package installed into a scratch folder
on PYTHONPATH, and ``dagster asset materialize -m oso_dagster.definitions --select 'key:bench/*'``:

  full refresh   the package without CDC: every row copied (the baseline of the catch-up target)
  cdc snapshot   the first CDC sync: the table copied after the log position is fixed
  cdc catch-up   after N row changes made with server-side SQL (1/2 updates, 1/4 deletes, 1/4 inserts)
  cdc no change  a sync with nothing in the log
  cursor         for context: ``--incremental bench_cdc=updated_at`` over the same changes (sees no deletes)

Each row reports the replication step (Dagster's step stats), the whole command (wall clock) and the peak RSS
of its largest process; the warehouse is compared with the source (count and sums) after every CDC sync. The
catch-up's time is split (``--no-breakdown`` turns this off) by a ``sitecustomize`` on the run's PYTHONPATH
that times the change-log read, the re-read of the changed rows and the DuckDB apply inside the step.

    python bench/cdc.py --source postgres --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa
from harness import UserPath, print_command

ROOT = Path(__file__).resolve().parents[1]
SOURCE_NAME = "bench"
TABLE = "bench_cdc"
SELECT = f"key:{SOURCE_NAME}/*"

# Loaded by every Python process of a timed run when its folder is on PYTHONPATH: once the CDC sync module is
# imported, wraps the change log's page iterator, apply.fetch and apply.apply_page with clocks and writes the
# totals to $BENCH_CDC_TIMINGS after each call (the step may run in its own process; bench_env drops OSO_*).
SITECUSTOMIZE = '''
import importlib.abc, importlib.machinery, json, os, sys, time

_TOTALS = {}
_NAME = "oso_dagster.run.cdc.sync"


def _add(what, seconds, count=0):
    total = _TOTALS.setdefault(what, [0.0, 0, 0])
    total[0] += seconds
    total[1] += 1
    total[2] += count
    with open(os.environ["BENCH_CDC_TIMINGS"], "w") as out:
        json.dump(_TOTALS, out)


def _timed(what, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _add(what, time.perf_counter() - started)
    return wrapper


def _timed_pages(function):
    def wrapper(*args, **kwargs):
        pages = iter(function(*args, **kwargs))
        while True:
            started = time.perf_counter()
            try:
                page = next(pages)
            except StopIteration:
                _add("read change log", time.perf_counter() - started)
                return
            _add("read change log", time.perf_counter() - started, page.changes)
            yield page
    return wrapper


def _patch():
    from oso_dagster.run.cdc import apply, logs, sync
    apply.fetch = _timed("re-read changed rows", apply.fetch)
    apply.apply_page = _timed("apply to DuckDB", apply.apply_page)
    sync._snapshot = _timed("snapshot", sync._snapshot)
    for log in (logs.PostgresLog, logs.MysqlLog):
        log.pages = _timed_pages(log.pages)
        log.acknowledge = _timed("acknowledge", log.acknowledge)
    sync.sync = _timed_sync(sync.sync)


def _timed_sync(function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            yield from function(*args, **kwargs)
        finally:
            _add("whole CDC sync", time.perf_counter() - started)
    return wrapper


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _NAME:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            sys.modules[name] = module
            _patch()
        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("BENCH_CDC_TIMINGS"):
    sys.meta_path.insert(0, _Finder())
'''


def create_table(url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name text NOT NULL, "
                                 "amount numeric(12,2) NOT NULL, updated_at timestamp NOT NULL, qty int NOT NULL)"))
            conn.execute(sa.text(
                f"INSERT INTO {TABLE} SELECT g, 'name-' || g, (g % 100000) / 100.0, "
                "timestamp '2026-01-01' + g * interval '1 second', (g % 1000)::int "
                "FROM generate_series(1, CAST(:n AS bigint)) g"),
                {"n": rows})
        else:
            conn.execute(sa.text(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, name varchar(64) NOT NULL, "
                                 "amount decimal(12,2) NOT NULL, updated_at datetime(6) NOT NULL, qty int NOT NULL)"))
            conn.execute(sa.text(
                f"INSERT INTO {TABLE} SELECT seq, CONCAT('name-', seq), (seq % 100000) / 100.0, "
                f"TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND, seq % 1000 FROM seq_1_to_{rows}"))
    engine.dispose()


def change(url: str, rows: int) -> dict[str, int]:
    """``rows`` row changes with server-side SQL, one statement (and transaction) each: updates of ids ≡ 1, 2
    (mod 4), deletes of ids ≡ 0 (mod 4), and new ids after the largest for the rest."""
    engine = sa.create_engine(url)
    now = "now()" if engine.dialect.name == "postgresql" else "NOW(6)"
    done = {}
    with engine.begin() as conn:
        done["updated"] = conn.execute(sa.text(
            f"UPDATE {TABLE} SET amount = amount + 1, qty = qty + 1, name = CONCAT(name, '+'), updated_at = {now} "
            "WHERE id % 4 IN (1, 2) AND id <= :n"), {"n": rows}).rowcount
    with engine.begin() as conn:
        done["deleted"] = conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE id % 4 = 0 AND id <= :n"),
                                       {"n": rows}).rowcount
    inserts = rows - done["updated"] - done["deleted"]
    with engine.begin() as conn:
        top = max(rows, conn.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {TABLE}")).scalar())
        if engine.dialect.name == "postgresql":
            done["inserted"] = conn.execute(sa.text(
                f"INSERT INTO {TABLE} SELECT g, 'new-' || g, (g % 100000) / 100.0, {now}, (g % 1000)::int "
                "FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) g"),
                {"a": top + 1, "b": top + inserts}).rowcount
        else:
            done["inserted"] = conn.execute(sa.text(
                f"INSERT INTO {TABLE} SELECT seq, CONCAT('new-', seq), (seq % 100000) / 100.0, {now}, seq % 1000 "
                f"FROM seq_{top + 1}_to_{top + inserts}")).rowcount
    engine.dispose()
    return done


def source_sums(url: str) -> tuple:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT count(*), sum(id), sum(amount), sum(qty) FROM {TABLE}")).one()
    engine.dispose()
    return _normal(found)


def warehouse_sums(user: UserPath) -> tuple:
    import duckdb

    with duckdb.connect(user.env["OSO_DUCKDB_PATH"], read_only=True) as con:
        (schema,) = con.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = ? AND table_schema LIKE ?",
            [TABLE, f"%{SOURCE_NAME}%"]).fetchone()
        return _normal(con.execute(f'SELECT count(*), sum(id), sum(amount), sum(qty) FROM "{schema}"."{TABLE}"')
                       .fetchone())


def _normal(values) -> tuple:
    count, ids, amount, qty = values
    return int(count), int(ids or 0), round(float(amount or 0), 2), int(qty or 0)


def expect_same(url: str, user: UserPath, what: str) -> int:
    source, landed = source_sums(url), warehouse_sums(user)
    if source != landed:
        sys.exit(f"{what}: the warehouse (count, sum id, sum amount, sum qty) {landed} differs from the source "
                 f"{source}")
    return landed[0]


class Timings:
    """The ``sitecustomize`` shim's totals for one run (empty without ``--breakdown``)."""

    def __init__(self, enabled: bool) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="oso_bench_cdc_shim_")) if enabled else None
        if self.folder:
            (self.folder / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))

    def run(self, user: UserPath) -> tuple[dict, dict]:
        """``dagster asset materialize`` with the shim on PYTHONPATH; (harness figures, shim totals)."""
        if self.folder is None:
            return user.materialize(SELECT), {}
        out = self.folder / "timings.json"
        out.unlink(missing_ok=True)
        saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "BENCH_CDC_TIMINGS")}
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(self.folder), saved["PYTHONPATH"]] if p)
        os.environ["BENCH_CDC_TIMINGS"] = str(out)
        try:
            result = user.materialize(SELECT)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return result, (json.loads(out.read_text()) if out.exists() else {})


def plugin_under_test(user: UserPath) -> str:
    from harness import check, run_timed

    found = check(run_timed([sys.executable, "-c", "import oso_dagster; print(oso_dagster.__file__)"], user.env),
                  "importing oso_dagster")
    return str(Path(found.stdout.strip()).parent)


def measure(kind: str, url: str, rows: int, timings: Timings, keep: bool) -> tuple[list, dict, dict]:
    create_table(url, rows)
    full = UserPath(SOURCE_NAME, url)
    cdc = UserPath(SOURCE_NAME, url)
    cursor = UserPath(SOURCE_NAME, url)
    table: list[tuple[str, str, dict]] = []
    breakdown: dict[str, dict] = {}
    try:
        full.scaffold(["--table", TABLE])
        print(f"{kind}: plugin under test: {plugin_under_test(full)}", flush=True)
        result = full.materialize(SELECT)
        table.append(("full refresh, no CDC", f"{full.count(TABLE):,} rows", result))

        cdc.scaffold(["--table", TABLE, "--cdc"])
        result, breakdown["cdc snapshot"] = timings.run(cdc)
        table.append(("cdc snapshot (first sync)", f"{expect_same(url, cdc, 'snapshot'):,} rows", result))

        cursor.scaffold(["--table", TABLE, "--incremental", f"{TABLE}=updated_at"])
        cursor.materialize(SELECT)

        started = time.monotonic()
        done = change(url, rows)
        print(f"{kind}: changes {done} in {time.monotonic() - started:.1f}s", flush=True)
        mix = f"{sum(done.values()):,} changes ({done['updated']:,} upd, {done['deleted']:,} del, " \
              f"{done['inserted']:,} ins)"

        result, breakdown["cdc catch-up"] = timings.run(cdc)
        expect_same(url, cdc, "catch-up")
        table.append(("cdc catch-up", mix, result))

        result, breakdown["cdc no change"] = timings.run(cdc)
        expect_same(url, cdc, "no-change sync")
        table.append(("cdc no change", "0 changes", result))

        result = cursor.materialize(SELECT)
        table.append(("cursor (incremental on updated_at), same changes, deletes not seen",
                      f"{done['updated'] + done['inserted']:,} rows read", result))
    finally:
        for user in (full, cdc, cursor):
            if keep:
                print(f"scratch home kept: {user.root}")
            else:
                user.close()
    return table, breakdown, done


def report(kind: str, rows: int, table: list, breakdown: dict) -> None:
    base = table[0][2]
    print(f"\n{kind}, {rows:,} rows; ratios against the full refresh without CDC "
          f"(step {base['step']:.2f}s, command {base['command']:.2f}s)\n")
    print("| run | rows / changes | step s | step x full refresh | command s | command x full refresh | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, what, r in table:
        print(f"| {label} | {what} | {r['step']:.2f} | {r['step'] / base['step']:.2f}x | {r['command']:.2f} | "
              f"{r['command'] / base['command']:.2f}x | {r['max_rss_kb'] / 1024:,.0f} MB |")
    named = {label: r for label, _, r in table}
    catch_up, idle = named["cdc catch-up"], named["cdc no change"]
    ratio = catch_up["step"] / base["step"]
    print(f"\ntarget: catch-up of {rows:,} changes / full refresh of {rows:,} rows (step) = {ratio:.2f}x "
          f"(<= 2x: {'met' if ratio <= 2 else 'MISSED'}); whole command {catch_up['command'] / base['command']:.2f}x")
    print(f"target: no-change sync, replication step = {idle['step']:.2f}s "
          f"(<= 2 s: {'met' if idle['step'] <= 2 else 'MISSED'})")
    for label, totals in breakdown.items():
        if not totals:
            continue
        parts = ", ".join(f"{what} {seconds:.2f}s ({calls} call{'s' if calls != 1 else ''}"
                          + (f", {count:,} changes" if count else "") + ")"
                          for what, (seconds, calls, count) in totals.items())
        whole = totals.get("whole CDC sync", [0.0])[0]
        rest = whole - sum(v[0] for k, v in totals.items() if k != "whole CDC sync")
        step = next(r["step"] for name, _, r in table if name.startswith(label))
        print(f"inside the step, {label}: {parts}; rest of the CDC sync {rest:.2f}s; step outside the CDC sync "
              f"{step - whole:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["postgres", "mysql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table, and row changes to catch up")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="no sitecustomize timing the log read / re-read / apply inside the step")
    parser.add_argument("--keep", action="store_true", help="keep the scratch homes (packages, warehouses)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.cdc.servers import binlog_mariadb, logical_postgres

    timings = Timings(not args.no_breakdown)
    servers = {"postgres": logical_postgres, "mysql": binlog_mariadb}
    kinds = ["postgres", "mysql"] if args.source == "both" else [args.source]
    results = []
    try:
        for kind in kinds:
            with servers[kind]() as url:
                results.append((kind, *measure(kind, url, args.rows, timings, args.keep)))
    finally:
        if timings.folder is not None:
            shutil.rmtree(timings.folder, ignore_errors=True)
    for kind, table, breakdown, _ in results:
        report(kind, args.rows, table, breakdown)
    print(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    print_command()


if __name__ == "__main__":
    main()
