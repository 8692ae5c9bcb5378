"""The first sync of an incremental table into DuckDB, at full-refresh speed.

An incremental table's first sync is a full snapshot, but dlt's path for it writes every row to a parquet
file, loads it into a staging table and merges it into the table. When the table has no cursor state yet and
its warehouse table is absent or empty, the snapshot instead streams straight into DuckDB like a full refresh
(:mod:`oso_dagster.run.load_duckdb`), and the largest cursor value read from that same stream becomes the
``initial_value`` of a short dlt run right after: it re-reads only the rows at that cursor value (they replace
themselves by primary key), stores dlt's own incremental state exactly as a dlt first sync would, and puts
the table into dlt's schema. Every later sync is dlt's, continuing from that cursor.

A run killed between the direct load and dlt's run leaves a filled table and no state: the next run then
takes dlt's path for the whole table, which is exact, only slower.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema import Schema
from dlt.sources import incremental
from sqlalchemy.engine import Engine

from oso_dagster.naming import NAMING_MODULE
from oso_dagster.run import load_duckdb
from oso_dagster.run.load_duckdb import ARROW_BACKENDS, DirectLoad
from oso_dagster.run.table_reader import TablePlan, table_resource


def why_not(destination: str, plan: TablePlan) -> str | None:
    """Why ``plan`` cannot take the direct first load whatever the warehouse holds, or None if it can."""
    config = plan.config
    cursor = config.incremental
    if destination != "duckdb":
        return "the warehouse is not DuckDB"
    if cursor is None or config.cursor_column is None:
        return "not incremental"
    if plan.backend not in ARROW_BACKENDS:
        return f"backend {plan.backend} does not read Arrow"
    if config.write_disposition not in ("merge", "append"):
        return f"write_disposition {config.write_disposition}"
    if config.soft_delete_column:
        return "soft-deleted rows are dropped by dlt's merge"
    if cursor.initial_value is not None or cursor.end_value is not None:
        return "the incremental has an initial or end value"
    if cursor.last_value_func is not max or getattr(cursor, "lag", None):
        return "the incremental is not a plain max cursor"
    column = plan.table.c.get(config.cursor_column)
    if column is None or column.nullable:
        return "the cursor column is nullable (dlt decides what a NULL cursor means)"
    if config.cursor_column in plan.duckdb_types or config.cursor_column in plan.json_text:
        return "the cursor column is not read as its own type"
    return None


def applies(pipeline: dlt.Pipeline, source_name: str, plan: TablePlan, destination: str) -> bool:
    """True when ``plan``'s table has no cursor state and its warehouse table is absent or empty."""
    if why_not(destination, plan) is not None:
        return False
    config = plan.config
    try:
        resources = pipeline.state["sources"][source_name]["resources"]
        if resources[config.landing_name]["incremental"]:
            return False
    except (KeyError, TypeError):
        pass
    return _empty_or_absent(pipeline, config.landing_name)


def _empty_or_absent(pipeline: dlt.Pipeline, table: str) -> bool:
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return True
        rows = client.execute_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            client.dataset_name, table,
        )
        if not rows or not rows[0][0]:
            return True
        qualified = client.make_qualified_table_name(table)
        return not client.execute_sql(f"SELECT 1 FROM {qualified} LIMIT 1")


class _CursorMax:
    """The largest cursor value among the Arrow batches that pass through (a ``add_map`` step)."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.value: Any = None

    def __call__(self, item: Any) -> Any:
        if isinstance(item, (pa.Table, pa.RecordBatch)) and item.num_rows:
            found = pc.max(item.column(self.column)).as_py()
            if found is not None and (self.value is None or found > self.value):
                self.value = found
        return item


def load(pipeline: dlt.Pipeline, engine: Engine, source_name: str, plan: TablePlan,
         progress: Any = None) -> tuple[DirectLoad, TablePlan]:
    """Land the whole table directly; return the load and the plan dlt's run continues with.

    The returned plan's incremental starts at the largest cursor value read (no rows: the plan unchanged,
    so dlt's run reads whatever arrived since, from the start).
    """
    config = plan.config
    assert config.cursor_column is not None and config.incremental is not None
    resource = table_resource(engine, plan, with_cursor=False)
    cursor_max = _CursorMax(config.cursor_column)
    resource.add_map(cursor_max)
    load_duckdb.ensure_dataset(pipeline)
    done = load_duckdb.load_table(
        pipeline, resource, config.landing_name, Schema(source_name, normalizers={"names": NAMING_MODULE}),
        progress=progress,
    )
    if cursor_max.value is None:
        return done, plan
    before = config.incremental
    continued = incremental(
        config.cursor_column, initial_value=cursor_max.value, row_order=before.row_order,
        on_cursor_value_missing=before.on_cursor_value_missing,
    )
    return done, dataclasses.replace(plan, config=dataclasses.replace(config, incremental=continued))
