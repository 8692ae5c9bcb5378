"""``oso-sources reset-table``: drop one table's warehouse copy and cursor (or CDC snapshot mark) so that its next
run reloads it.

The way out the errors name after a column type change that cannot be applied in place, or to reload a
table from scratch for any other reason.
"""

from __future__ import annotations

from typing import Any

from oso_dagster.errors import ConfigurationError
from oso_dagster.naming import warehouse_name
from oso_dagster.run import chunked_snapshot
from oso_dagster.run.cdc import state as cdc_state
from oso_dagster.settings import Settings
from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline, warehouse_write_lock


def reset_table(source_name: str, table: str, settings: Settings | None = None) -> None:
    """Drop one table's warehouse copy, dlt schema entry, incremental cursor, any unfinished chunked
    snapshot and, for a CDC table, its snapshot mark in the CDC state; the next run reloads it from scratch.

    The way out after a column type change that cannot be applied in place.
    """
    from dlt.pipeline.helpers import pipeline_drop

    settings = settings or Settings.from_env()
    pipeline = make_pipeline(settings, source_name)
    landing = warehouse_name(table)
    with warehouse_write_lock(settings), dlt_environment(settings):
        pipeline.drop()
        pipeline.sync_destination()
        # a chunked snapshot a killed run left unfinished (run/chunked_snapshot.py) would otherwise be resumed
        unfinished = chunked_snapshot.drop_unfinished_snapshot(pipeline, landing)
        # a CDC table's snapshot mark (run/cdc/state.py): without it the next sync copies the table again
        snapshot_forgotten = cdc_state.forget(pipeline, landing)
        if not _in_warehouse(pipeline, landing):
            if unfinished or snapshot_forgotten:
                return
            known: list[str] = []
            if pipeline.default_schema_name:
                known = sorted(pipeline.default_schema.data_table_names())
            raise ConfigurationError(
                f"The warehouse holds no table {landing!r} of source {source_name!r}, so nothing was reset"
                + (f" (tables dlt loaded for it: {', '.join(known)})." if known else ".")
                + " Name the table as it lands in the warehouse: `oso-sources reset-table SOURCE TABLE`."
            )
        if pipeline.default_schema_name and landing in pipeline.default_schema.tables:
            pipeline_drop(pipeline, resources=[landing])()
            return
        # a full refresh loaded directly into DuckDB (oso_dagster.run.load_duckdb): dlt never tracked it
        with pipeline.sql_client() as client:
            client.execute_sql(f"DROP TABLE IF EXISTS {client.make_qualified_table_name(landing)}")



def _in_warehouse(pipeline: Any, landing: str) -> bool:
    """Whether the source's dataset holds ``landing`` (asked of the destination itself, as dlt does)."""
    with pipeline.destination_client() as client:
        return any(columns for _, columns in client.get_storage_tables([landing]))
