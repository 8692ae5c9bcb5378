"""Many small merged tables: a sync where nothing changed loads nothing, a change lands exactly, deletes are
still reconciled (oso_dagster.run.skip_unchanged). One run sequence, to keep the test short."""

from __future__ import annotations

import time

import pytest
from conftest import run_sql
from dlt.sources import incremental

from replication.helpers import materialization_metadata, query, run_ok, set_secret

pytestmark = [pytest.mark.slow]

N = 30
NAMES = [f"t_{i:02d}" for i in range(N)]


def _tables() -> list[dict]:
    return [
        {"table": name, "incremental": incremental("updated_at"), **({"reconcile_deletes": True} if i == 0 else {})}
        for i, name in enumerate(NAMES)
    ]


def _loads() -> int:
    """dlt loads recorded in the warehouse: a skipped table adds none."""
    return query("SELECT count(*) FROM many._dlt_loads")[0][0]


def _sync() -> tuple[dict[str, dict], float]:
    started = time.monotonic()
    result = run_ok("many", _tables())
    return materialization_metadata(result), time.monotonic() - started


def _same_as_source(pg_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        expected = sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT id, name FROM {name}")))
    engine.dispose()
    assert sorted(query(f"SELECT id, name FROM many.{name}")) == expected, name


@pytest.mark.postgres
def test_unchanged_tables_cost_one_query_and_changes_land(pg_url: str, monkeypatch) -> None:
    set_secret(monkeypatch, "many", pg_url)
    run_sql(pg_url, *[
        statement for name in NAMES for statement in (
            f"CREATE TABLE {name} (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL)",
            f"INSERT INTO {name} SELECT i, 'n' || i, timestamptz '2026-01-01 00:00+00' + i * interval '1 hour' "
            "FROM generate_series(1, 5) i",
        )
    ])
    first, _ = _sync()
    assert {t: m["rows_loaded"] for t, m in first.items()} == dict.fromkeys(NAMES, 5)
    loads = _loads()

    # nothing changed: every table reported, none read by dlt, nothing written to the warehouse
    second, _ = _sync()
    assert set(second) == set(NAMES)
    assert all(m.get("unchanged") for m in second.values()), second
    assert all(m["dagster/row_count"] == 5 for m in second.values())
    assert _loads() == loads

    # a row at the same cursor value as the last one, a moved cursor, a hard delete under reconcile_deletes
    run_sql(pg_url,
            "INSERT INTO t_03 VALUES (6, 'same cursor', timestamptz '2026-01-01 05:00+00')",
            "UPDATE t_07 SET name = 'changed', updated_at = timestamptz '2026-02-01 00:00+00' WHERE id = 2",
            "DELETE FROM t_00 WHERE id = 1")
    third, _ = _sync()
    changed = {t for t, m in third.items() if not m.get("unchanged")}
    assert changed == {"t_00", "t_03", "t_07"}, changed
    for name in ("t_00", "t_03", "t_07"):
        _same_as_source(pg_url, name)

    # a column added to the source makes the table be read although no row changed
    run_sql(pg_url, "ALTER TABLE t_11 ADD COLUMN extra text")
    fourth, _ = _sync()
    assert {t for t, m in fourth.items() if not m.get("unchanged")} == {"t_11"}
    assert "extra" in {r[0] for r in query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'many' AND table_name = 't_11'")}

    loads = _loads()
    fifth, _ = _sync()
    assert all(m.get("unchanged") for m in fifth.values())
    assert _loads() == loads


def test_each_dialect_skips_an_unchanged_table_and_reads_an_equal_cursor_row(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite (a DATETIME read as text unless typed), MariaDB (naive DATETIME), PostgreSQL alike."""
    import datetime as dt

    import sqlalchemy as sa

    meta = sa.MetaData()
    table = sa.Table("many_events", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("updated_at", sa.DateTime, nullable=False), sa.Column("v", sa.String(20)))
    engine = sa.create_engine(source_url)
    meta.create_all(engine)
    moment = dt.datetime(2026, 1, 1, 12, 30)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "updated_at": moment, "v": "a"} for i in (1, 2)])
    set_secret(monkeypatch, "many", source_url)
    tables = [{"table": "many_events", "incremental": incremental("updated_at")}]
    assert materialization_metadata(run_ok("many", tables))["many_events"]["rows_loaded"] == 2
    assert materialization_metadata(run_ok("many", tables))["many_events"].get("unchanged") is True
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 3, "updated_at": moment, "v": "same cursor"}])
    engine.dispose()
    third = materialization_metadata(run_ok("many", tables))["many_events"]
    assert not third.get("unchanged")
    assert sorted(r[0] for r in query("SELECT id FROM many.many_events")) == [1, 2, 3]
