"""CDC from PostgreSQL into dlt's bigquery destination (the emulator, a labelled stand-in for BigQuery).

One sync lands all changes of a table with one dlt ``upsert`` load (one ``MERGE``), deletes included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from oso_dagster.run.cdc import postgres
from replication.helpers import failure_text, materialization_metadata, run, set_secret

from bigquery.conftest import BigQueryRun
from bigquery.helpers import rows_by_id

pytestmark = [pytest.mark.bigquery, pytest.mark.slow]


@pytest.fixture
def source(logical_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, sa.Engine]]:
    name = f"c{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(logical_pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
        conn.execute(sa.text(f"CREATE TABLE {name}.orders (id int PRIMARY KEY, amount numeric(12,2) NOT NULL, "
                             "note text)"))
        conn.execute(sa.text(f"INSERT INTO {name}.orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 20) g"))
    set_secret(monkeypatch, name, logical_pg_url)
    yield name, engine
    postgres.drop(engine, name)
    engine.dispose()


def test_changes_and_deletes_land_in_bigquery(source: tuple[str, sa.Engine], bq: BigQueryRun) -> None:
    name, engine = source
    tables = [{"table": "orders"}]
    first = run(name, tables, cdc=True, schema=name, retries=0)
    assert first.success, failure_text(first)
    assert materialization_metadata(first)["orders"]["snapshot"] is True
    assert sorted(rows_by_id(bq, name, "orders")) == list(range(1, 21))
    with engine.connect() as conn:
        conn.execute(sa.text(f"UPDATE {name}.orders SET amount = 99.99, note = NULL WHERE id <= 3"))
        conn.execute(sa.text(f"DELETE FROM {name}.orders WHERE id BETWEEN 10 AND 14"))
        conn.execute(sa.text(f"INSERT INTO {name}.orders VALUES (100, 1.00, 'new')"))
    second = run(name, tables, cdc=True, schema=name, retries=0)
    assert second.success, failure_text(second)
    metadata = materialization_metadata(second)["orders"]
    assert (metadata["rows_upserted"], metadata["rows_deleted"]) == (4, 5)
    rows = rows_by_id(bq, name, "orders")
    assert sorted(rows) == [*range(1, 10), *range(15, 21), 100]
    assert rows[1]["amount"] == Decimal("99.99") and rows[1]["note"] is None
    assert rows[100]["note"] == "new" and rows[20]["amount"] == Decimal("25.00")
    assert all("_oso_deleted" not in row or not row["_oso_deleted"] for row in rows.values())
    third = run(name, tables, cdc=True, schema=name, retries=0)  # nothing changed: nothing loaded
    assert third.success, failure_text(third)
    assert materialization_metadata(third)["orders"]["rows_upserted"] == 0
