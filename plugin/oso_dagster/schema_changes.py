"""Column type changes that cannot be applied in place: a clear message, and ``reset_table`` to reload.

dlt would otherwise land such values in silent variant columns (``col__v_text``); replication freezes
column types and turns dlt's contract violation into :func:`schema_change_message`.
"""

from __future__ import annotations

from dlt.common.schema.exceptions import DataValidationError

from oso_dagster.destinations import make_pipeline, warehouse_write_lock
from oso_dagster.factories.sql import SqlSource
from oso_dagster.settings import Settings


def schema_change_message(source: SqlSource, error: DataValidationError) -> str:
    """What changed, in which table and column, and the two ways out (dlt's own message says neither)."""
    landing = error.table_name
    config = next((c for c in source.tables if c.landing_name == landing), None)
    table = config.qualified_name if config else landing
    existing = (error.table_schema or {}).get("columns", {}).get(error.column_name, {}) if isinstance(
        error.table_schema, dict) else {}
    old_type = existing.get("data_type", "its previous type")
    new_type = _incoming_type(error) or "a different type"
    return (
        f"Source {source.name!r}, table {table!r}: column {error.column_name!r} changed type from {old_type} "
        f"(in the warehouse) to {new_type} (in the source). It cannot be converted safely, so nothing was loaded. "
        f"Either cast the column back to its old type in the source (e.g. a view), or reload the table with its "
        f"new type: python -c \"from oso_dagster.schema_changes import reset_table; "
        f"reset_table({source.name!r}, {landing!r})\" drops its warehouse copy and cursor; the next run then "
        "loads it in full."
    )


def _incoming_type(error: DataValidationError) -> str | None:
    info = str(error)
    marker = "Incoming column:"
    if marker in info:
        tail = info.split(marker, 1)[1]
        if "'data_type': '" in tail:
            return tail.split("'data_type': '", 1)[1].split("'", 1)[0]
    return None


def reset_table(source_name: str, table: str) -> None:
    """Drop one table's warehouse copy, dlt schema entry and incremental cursor; the next run reloads it.

    The way out after a column type change that cannot be applied in place.
    """
    from dlt.pipeline.helpers import pipeline_drop

    from oso_dagster.naming import warehouse_name

    settings = Settings.from_env()
    pipeline = make_pipeline(settings, source_name)
    with warehouse_write_lock(settings):
        pipeline.drop()
        pipeline.sync_destination()
        landing = warehouse_name(table)
        if pipeline.default_schema_name and landing in pipeline.default_schema.tables:
            pipeline_drop(pipeline, resources=[landing])()
            return
        # a full refresh loaded directly into DuckDB (oso_dagster.duckdb_direct): dlt never tracked it
        with pipeline.sql_client() as client:
            client.execute_sql(f"DROP TABLE IF EXISTS {client.make_qualified_table_name(landing)}")
