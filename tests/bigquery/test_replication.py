"""PostgreSQL -> dlt's bigquery destination (the emulator, or a real project): full load, merge, values back.

Values are read back through the BigQuery client and compared with the same matrices as the DuckDB tests
(``tests/replication``), with BigQuery's one documented difference: every timestamp lands as ``TIMESTAMP`` (UTC).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import run_sql
from dlt.sources import incremental
from replication.helpers import materialization_metadata, run_ok, set_secret
from replication.matrix import create_statements, expected_rows
from replication.test_types_postgres import EXTRAS, SCALARS, TYPES

from bigquery.conftest import BigQueryRun
from bigquery.helpers import column_types, mismatches, rows_by_id

pytestmark = [pytest.mark.bigquery, pytest.mark.postgres, pytest.mark.slow]

FLOATS = {"f4", "f8"}


def test_scalars_load_from_parquet_exactly(pg_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table without JSON columns loads from parquet: every scalar, NaN/±Infinity/-0.0 and bytes included."""
    run_sql(pg_url, *create_statements("scalars", SCALARS))
    set_secret(monkeypatch, "src", pg_url)
    result = run_ok("src", [{"table": "scalars"}])
    assert materialization_metadata(result)["scalars"]["backend"] == "connectorx"
    problems = mismatches(rows_by_id(bq, "src", "scalars"), expected_rows(SCALARS))
    assert problems == [], "\n".join(problems)
    types = column_types(bq, "src", "scalars")
    assert types["ts"] == types["tstz"] == "TIMESTAMP"
    assert types["by"] == "BYTES"


def test_every_type_with_json_columns_loads_exactly(
    pg_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON and array columns land as their JSON text, so the table still loads from parquet: float specials,
    bytes and decimals wider than NUMERIC all land exactly."""
    columns = SCALARS + EXTRAS
    run_sql(pg_url, *TYPES, *create_statements("everything", columns))
    set_secret(monkeypatch, "src", pg_url)
    run_ok("src", [{"table": "everything"}])
    landed = rows_by_id(bq, "src", "everything")
    problems = mismatches(landed, expected_rows(columns))
    assert problems == [], "\n".join(problems)
    types = column_types(bq, "src", "everything")
    assert types["js"] == types["jb"] == types["ia"] == types["ta"] == "STRING"
    assert types["n_unb"] == "STRING" and types["n_50_20"] == "STRING"
    assert landed[1]["n_38_10"] == Decimal("9999999999999999999999999999.9999999999")


def test_float_specials_survive_beside_json(pg_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once lost: a JSON column made the whole source load from JSON lines, where dlt writes NaN as null."""
    columns = [c for c in SCALARS if c.name in FLOATS] + [c for c in EXTRAS if c.name == "js"]
    run_sql(pg_url, *create_statements("floats", columns))
    set_secret(monkeypatch, "src", pg_url)
    run_ok("src", [{"table": "floats"}])
    problems = mismatches(rows_by_id(bq, "src", "floats"), expected_rows(columns))
    assert problems == [], "\n".join(problems)


def test_incremental_merge_updates_and_inserts(pg_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """Second run merges on the primary key: changed rows replaced, new rows added, nothing duplicated."""
    run_sql(
        pg_url,
        "CREATE TABLE events (id integer PRIMARY KEY, seq integer NOT NULL, amount numeric(38,10), "
        "doc jsonb, at timestamptz)",
        "INSERT INTO events VALUES (1, 1, 1.5, '{\"a\": 1}', '2024-01-01 00:00:00+00'), "
        "(2, 2, -0.0000000001, '[1, 2]', '2024-01-02 00:00:00+00'), (3, 3, NULL, NULL, NULL)",
    )
    set_secret(monkeypatch, "src", pg_url)
    tables = [{"table": "events", "incremental": incremental("seq")}]
    first = run_ok("src", tables)
    assert materialization_metadata(first)["events"]["cursor_value"] == "3"
    assert sorted(rows_by_id(bq, "src", "events")) == [1, 2, 3]

    run_sql(pg_url, "UPDATE events SET seq = 4, amount = 99999999999999999999999999.0000000001, "
            "doc = '{\"b\": [true]}' WHERE id = 2",
            "INSERT INTO events VALUES (4, 5, 7, '{}', '2024-01-04 00:00:00+00')")
    second = run_ok("src", tables)
    assert materialization_metadata(second)["events"]["cursor_value"] == "5"
    rows = rows_by_id(bq, "src", "events")
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[2]["seq"] == 4
    assert rows[2]["amount"] == Decimal("99999999999999999999999999.0000000001")
    assert rows[2]["doc"] in ({"b": [True]}, '{"b":[true]}', '{"b": [true]}')
    assert rows[1]["amount"] == Decimal("1.5") and rows[4]["seq"] == 5
    count = bq.rows(f"SELECT count(*) AS n FROM `{bq.dataset('src')}.events`")[0]["n"]
    assert count == 4
