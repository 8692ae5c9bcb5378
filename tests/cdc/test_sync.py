"""A CDC source through Dagster: subsets, tables joining and leaving CDC, the retention check, BigQuery refused.

Real servers with a change log (tests/cdc/conftest.py), a real DuckDB warehouse, ``dagster.materialize``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster
import pytest
import sqlalchemy as sa
from oso_dagster.run.cdc import postgres
from replication.helpers import build, failure_text, materialization_metadata, query, set_secret

pytestmark = pytest.mark.slow


@pytest.fixture
def source(logical_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh schema with ``orders`` and ``customers``; yields the source name and an autocommit engine."""
    name = f"s{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(logical_pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
        conn.execute(sa.text(f"CREATE TABLE {name}.orders (id int PRIMARY KEY, amount numeric(12,2), note text)"))
        conn.execute(sa.text(f"CREATE TABLE {name}.customers (id int PRIMARY KEY, name text)"))
        conn.execute(sa.text(f"INSERT INTO {name}.orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 100) g"))
        conn.execute(sa.text(f"INSERT INTO {name}.customers VALUES (1, 'Ann'), (2, 'Bob')"))
    set_secret(monkeypatch, name, logical_pg_url)
    yield name, engine
    postgres.drop(engine, name)
    engine.dispose()


def _sql(engine: sa.Engine, statement: str) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text(statement))


def _sync(name: str, tables: list[dict[str, object]], select: list[str] | None = None,
          **options: object) -> dagster.ExecuteInProcessResult:
    assets = build(name, tables, cdc=True, schema=name, retries=0, **options)
    selection = [dagster.AssetKey([name, table]) for table in select] if select else None
    return dagster.materialize([assets], selection=selection, raise_on_error=False)


def _same(name: str, engine: sa.Engine, table: str) -> None:
    with engine.connect() as conn:
        source = sorted(tuple(str(v) for v in row) for row in conn.execute(sa.text(f"SELECT * FROM {name}.{table}")))
    landed = sorted(tuple(str(v) for v in row) for row in query(f"SELECT * FROM {name}.{table}"))
    assert landed == source


TABLES: list[dict[str, object]] = [{"table": "orders"}, {"table": "customers"}]


def test_a_subset_run_still_applies_the_other_tables_changes(source: tuple[str, sa.Engine]) -> None:
    name, engine = source
    assert _sync(name, TABLES).success
    _sql(engine, f"UPDATE {name}.customers SET name = 'Bobby' WHERE id = 2")
    _sql(engine, f"DELETE FROM {name}.orders WHERE id <= 10")
    result = _sync(name, TABLES, select=["orders"])
    assert result.success, failure_text(result)
    assert set(materialization_metadata(result)) == {"orders"}
    _same(name, engine, "orders")
    _same(name, engine, "customers")  # applied although not selected: the slot moved past its change


def test_a_table_left_out_of_cdc_and_back_is_copied_again(source: tuple[str, sa.Engine]) -> None:
    name, engine = source
    assert _sync(name, TABLES).success
    result = _sync(name, [{"table": "orders"}, {"table": "customers", "cdc": False}])
    assert result.success, failure_text(result)
    _sql(engine, f"INSERT INTO {name}.customers VALUES (3, 'Cy')")  # while customers is not followed
    _sync(name, [{"table": "orders"}, {"table": "customers", "cdc": False}])
    _sql(engine, f"DELETE FROM {name}.customers WHERE id = 1")
    result = _sync(name, TABLES)
    assert result.success, failure_text(result)
    assert materialization_metadata(result)["customers"]["snapshot"] is True
    _same(name, engine, "customers")


def test_the_retention_check_fails_past_its_threshold(source: tuple[str, sa.Engine]) -> None:
    name, engine = source
    assert _sync(name, TABLES).success
    _sql(engine, f"INSERT INTO {name}.orders SELECT g, 1, repeat('x', 500) FROM generate_series(1000, 30000) g")
    result = _sync(name, TABLES, cdc_max_retained_wal_mb=1)
    assert result.success, failure_text(result)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "cdc_log_retention" and not evaluation.passed
    assert "sync more often" in (evaluation.description or "").lower()
    _same(name, engine, "orders")
    # caught up: the slot's restart point moves once decoding passes the server's next record of running
    # transactions (every 15 s, or a checkpoint), at the next sync's acknowledgement
    _sql(engine, "CHECKPOINT")
    _sync(name, TABLES, cdc_max_retained_wal_mb=1)
    result = _sync(name, TABLES, cdc_max_retained_wal_mb=1)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.description


def test_a_dropped_and_a_widened_column_keep_syncing(source: tuple[str, sa.Engine]) -> None:
    name, engine = source
    assert _sync(name, TABLES).success
    _sql(engine, f"ALTER TABLE {name}.orders DROP COLUMN note")
    _sql(engine, f"ALTER TABLE {name}.customers ALTER COLUMN id TYPE bigint")
    _sql(engine, f"UPDATE {name}.orders SET amount = 7 WHERE id <= 5")
    _sql(engine, f"INSERT INTO {name}.customers VALUES (3000000000, 'Big')")
    result = _sync(name, TABLES)
    assert result.success, failure_text(result)
    # the warehouse keeps the dropped column: NULL for rows changed since, the old value for the others
    assert query(f"SELECT id, amount, note FROM {name}.orders WHERE id IN (1, 6) ORDER BY id") == [
        (1, 7, None), (6, pytest.approx(7.5), "n6")]
    assert (3000000000, "Big") in query(f"SELECT id, name FROM {name}.customers")
    _same(name, engine, "customers")
