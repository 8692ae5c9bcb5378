"""Column type changes that cannot be applied in place: a message naming the column and both ways out.

dlt would otherwise land such values in silent variant columns (``col__v_text``); replication freezes
column types and turns dlt's contract violation into :func:`schema_change_message`.
"""

from __future__ import annotations

from dlt.common.schema.exceptions import DataValidationError

from oso_dagster.factories.config import SqlSource


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
        f"new type: `oso-sources reset-table {source.name} {landing}` drops its warehouse copy and cursor; "
        "the next run then loads it in full."
    )


def _incoming_type(error: DataValidationError) -> str | None:
    info = str(error)
    marker = "Incoming column:"
    if marker in info:
        tail = info.split(marker, 1)[1]
        if "'data_type': '" in tail:
            return tail.split("'data_type': '", 1)[1].split("'", 1)[0]
    return None
