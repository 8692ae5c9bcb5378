"""Reading replicated tables back through the BigQuery client, and what BigQuery changes on the way."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from replication.matrix import Interval, Json, same
from replication.matrix import mismatches as matrix_mismatches

from bigquery.conftest import BigQueryRun


def rows_by_id(bq: BigQueryRun, dataset: str, table: str) -> dict[Any, dict[str, Any]]:
    """``{id: {column: value}}`` read through the BigQuery client, dlt's bookkeeping columns dropped."""
    rows = bq.rows(f"SELECT * FROM `{bq.dataset(dataset)}.{table}`")
    return {row["id"]: {k: v for k, v in row.items() if not k.startswith("_dlt_")} for row in rows}


def column_types(bq: BigQueryRun, dataset: str, table: str) -> dict[str, str]:
    schema = bq.client.get_table(f"{bq.dataset(dataset)}.{table}").schema
    return {field.name: field.field_type for field in schema}


def as_bigquery(value: Any) -> Any:
    """The value BigQuery returns for a DuckDB-matrix expectation.

    BigQuery has one instant type: dlt lands every timestamp as ``TIMESTAMP`` (UTC), so a naive source
    timestamp comes back as the same wall-clock time in UTC.
    """
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def same_in_bigquery(landed: Any, expected: Any) -> bool:
    """:func:`replication.matrix.same`, with JSON compared as data (the client returns JSON parsed)."""
    if isinstance(expected, Interval):  # BigQuery keeps the source's text (see docs/types.md)
        return landed == expected.source
    if isinstance(expected, Json):
        if landed == expected.value and type(landed) is type(expected.value):
            return True
        try:
            return isinstance(landed, str) and json.loads(landed) == expected.value
        except ValueError:
            return False
    return same(landed, as_bigquery(expected))


def mismatches(landed: dict[Any, dict[str, Any]], expected: dict[int, dict[str, Any]]) -> list[str]:
    return matrix_mismatches(landed, expected, same_in_bigquery)
