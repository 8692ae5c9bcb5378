"""PostgreSQL-only behaviour: partitioned tables, the connectorx path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import run_sql
from dlt.sources import incremental
from oso_dagster.database import create_source_engine, reflect_table

from replication.helpers import materialization_metadata, query, rows_by_id, run_ok, set_secret

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_partitioned_table_replicates_as_one_table(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE measurements (id bigint, taken_at timestamptz NOT NULL, value numeric(10,3), "
        "PRIMARY KEY (id, taken_at)) PARTITION BY RANGE (taken_at)",
        "CREATE TABLE measurements_2023 PARTITION OF measurements"
        " FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
        "CREATE TABLE measurements_2024 PARTITION OF measurements"
        " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "INSERT INTO measurements VALUES (1, '2023-06-01 12:00+00', 1.5), (2, '2024-02-29 00:00+00', 2.125),"
        " (3, '2024-12-31 23:59:59.999999+00', -3.001)",
    )
    # SQLAlchemy reflects the partitioned parent with its columns and primary key
    table = reflect_table(create_source_engine(pg_url), "measurements")
    assert [c.name for c in table.columns] == ["id", "taken_at", "value"]
    assert [c.name for c in table.primary_key.columns] == ["id", "taken_at"]

    set_secret(monkeypatch, "src", pg_url)
    result = run_ok("src", [{"table": "measurements", "incremental": incremental("taken_at")}])
    assert rows_by_id("src", "measurements") == {
        1: {"id": 1, "taken_at": dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC), "value": Decimal("1.500")},
        2: {"id": 2, "taken_at": dt.datetime(2024, 2, 29, tzinfo=dt.UTC), "value": Decimal("2.125")},
        3: {"id": 3, "taken_at": dt.datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            "value": Decimal("-3.001")},
    }
    landed = query("select table_name from information_schema.tables where table_schema = 'src'")
    tables = {r[0] for r in landed}
    assert "measurements" in tables
    assert not any(t.startswith("measurements_20") for t in tables)
    assert materialization_metadata(result)["measurements"]["rows_loaded"] == 3
