"""What each replicated table's materialization shows in Dagster, the same on both load paths.

Dagster's standard keys (``dagster/row_count``, ``dagster/table_name``, ``dagster/column_schema`` with the
warehouse's own column types) fill the UI's table views; ``summary`` says in one line what the run did;
``rows_loaded``, ``cursor_value``, ``duration_s``, ``loader`` and ``backend`` are for people and scripts
reading the run storage (``oso-sources list`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dlt
from dagster import MetadataValue, TableColumn, TableSchema

from oso_dagster.naming import mode_label

# dagster-dlt's per-table metadata we do not pass on: a dump of dlt's load jobs with local file paths
_DLT_NOISE = frozenset({"jobs"})


@dataclass(frozen=True)
class TableLoad:
    """What one run did to one table."""

    table: str  # as it lands in the warehouse
    cursor: str | None  # the incremental cursor column, if any
    rows_loaded: int
    seconds: float
    loader: str  # "dlt" or "duckdb direct"
    backend: str
    write_disposition: str
    cursor_from: Any = None
    cursor_to: Any = None
    row_count: int | None = None  # rows in the warehouse table after the load, when known


def table_metadata(
    pipeline: dlt.Pipeline, load: TableLoad, columns: Mapping[str, Mapping[str, Any]],
    dlt_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The materialization metadata of ``load``; ``columns`` are dlt's column schemas of the landed table."""
    destination = pipeline.destination.destination_name
    metadata: dict[str, Any] = {k: v for k, v in (dlt_metadata or {}).items() if k not in _DLT_NOISE}
    metadata.update({
        "summary": MetadataValue.text(summary(load)),
        "rows_loaded": MetadataValue.int(load.rows_loaded),
        "duration_s": MetadataValue.float(round(load.seconds, 3)),
        "loader": load.loader,
        "backend": load.backend,
        "write_disposition": load.write_disposition,
        "dataset_name": pipeline.dataset_name,
        "destination_name": destination,
        "dagster/table_name": f"{destination}.{pipeline.dataset_name}.{load.table}",
        "dagster/column_schema": TableSchema(columns=[
            TableColumn(name=name, type=kind) for name, kind in warehouse_types(pipeline, load.table, columns).items()
        ]),
    })
    if load.row_count is not None:
        metadata["dagster/row_count"] = MetadataValue.int(load.row_count)
    if load.cursor_to is not None:
        metadata["cursor_value"] = MetadataValue.text(str(load.cursor_to))
    return metadata


def summary(load: TableLoad) -> str:
    """``incremental on 'updated_at': 3 rows in 0.8 s, cursor 2026-01-01 → 2026-02-02`` and the like."""

    text = f"{mode_label(load.cursor)}: {load.rows_loaded:,} rows in {load.seconds:.1f} s"
    if load.cursor and load.cursor_to is not None:
        moved = load.cursor_from is not None and load.cursor_from != load.cursor_to
        text += f", cursor {load.cursor_from} → {load.cursor_to}" if moved else f", cursor at {load.cursor_to}"
    return text


def warehouse_types(pipeline: dlt.Pipeline, table: str, columns: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Column name -> the type the warehouse holds it as (dlt's type mapper, which created the table)."""
    mapper = pipeline.destination.capabilities().get_type_mapper()
    prepared: Any = {"name": table, "columns": {c.get("name", n): dict(c) for n, c in columns.items()}}
    types = {}
    for name, column in columns.items():
        landed = str(column.get("name") or name)
        try:
            types[landed] = mapper.to_destination_type(column, prepared)  # type: ignore[arg-type]
        except Exception:  # a type dlt leaves to the destination's inference: name dlt's own
            types[landed] = str(column.get("data_type") or "unknown")
    return types


def warehouse_row_counts(pipeline: dlt.Pipeline, tables: list[str]) -> dict[str, int]:
    """Rows in each of ``tables`` after a load, in one query (a table that is missing is left out)."""
    if not tables:
        return {}
    with pipeline.sql_client() as client:
        parts = [f"SELECT {i} AS i, count(*) AS n FROM {client.make_qualified_table_name(t)}"
                 for i, t in enumerate(tables)]
        try:
            rows = client.execute_sql(" UNION ALL ".join(parts)) or []
        except Exception:  # a table dlt did not create (nothing to load yet): count none rather than fail
            return {}
    return {tables[int(i)]: int(n) for i, n in rows}
