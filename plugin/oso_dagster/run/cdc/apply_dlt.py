"""CDC into warehouses other than DuckDB (BigQuery), through dlt: one load and one ``MERGE`` per table per sync.

BigQuery limits DML per table, so a sync gathers every page's changed keys first and lands them at once: the
current rows of the changed keys (read by the table's own reader, as for DuckDB) and a row per key the source no
longer has, flagged ``_oso_deleted``, go into one dlt resource per table with the ``upsert`` merge strategy
and ``_oso_deleted`` as its ``hard_delete`` column. dlt loads them into its staging dataset (one load job per
file) and runs one ``MERGE`` per table. A truncated table is copied again with ``replace`` instead. The
position is stored after the load; a crash in between re-applies the same keys, with the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema import Schema
from sqlalchemy.engine import Engine

from oso_dagster.run.cdc.apply import KEYS_PER_QUERY, Applied, typed_key, where_keys
from oso_dagster.run.cdc.changes import Key, TableChanges, key_text
from oso_dagster.run.table_reader import SCHEMA_CONTRACT, TablePlan, table_resource

DELETED = "_oso_deleted"


def full_copy(plan: TablePlan) -> TablePlan:
    """The plan as a full refresh: a CDC table's snapshot, whatever its entry says about cursors."""
    config = dataclasses.replace(plan.config, incremental=None, write_disposition="replace")
    return dataclasses.replace(plan, config=config)


def snapshot(pipeline: dlt.Pipeline, engine: Engine, plans: Sequence[TablePlan], schema: Schema) -> dict[str, int]:
    """Copy whole tables with dlt's ``replace``; returns rows loaded per landing table."""
    resources = [_copy_resource(engine, plan) for plan in plans]
    info = pipeline.run(_source(schema, resources), loader_file_format="parquet")
    return _rows_loaded(pipeline, info, [plan.config.landing_name for plan in plans])


def apply_changes(
    pipeline: dlt.Pipeline, engine: Engine, changes: Sequence[tuple[TablePlan, TableChanges]], schema: Schema
) -> dict[str, Applied]:
    """Upsert the changed keys' current rows and delete the keys that are gone, one dlt load for all tables."""
    applied: dict[str, Applied] = {}
    resources = []
    truncated = [plan for plan, found in changes if found.truncated]
    for plan, found in changes:
        if found.truncated or not found.keys:
            continue
        result = applied[plan.config.landing_name] = Applied()
        resources.append(_changes_resource(engine, plan, found, result))
    if truncated:
        resources += [_copy_resource(engine, plan) for plan in truncated]
    if not resources:
        return applied
    info = pipeline.run(_source(schema, resources), loader_file_format="parquet")
    copied = _rows_loaded(pipeline, info, [plan.config.landing_name for plan in truncated])
    for plan in truncated:
        applied[plan.config.landing_name] = Applied(upserted=copied.get(plan.config.landing_name, 0), truncated=True)
    return applied


def _changes_resource(engine: Engine, plan: TablePlan, found: TableChanges, result: Applied) -> Any:
    key = list(plan.primary_key or ())
    keys = sorted(found.keys, key=lambda k: tuple("" if v is None else v for v in k))
    batches = [[typed_key(plan, key, k) for k in keys[start:start + KEYS_PER_QUERY]]
               for start in range(0, len(keys), KEYS_PER_QUERY)]
    hints = dict(table_resource(engine, plan, where=where_keys(key, batches[0]), with_cursor=False)
                 .compute_table_schema().get("columns") or {})
    columns: dict[str, Any] = _relaxed(hints, key)
    columns[DELETED] = {"name": DELETED, "data_type": "bool", "nullable": True, "hard_delete": True}

    def rows() -> Iterator[pa.Table]:
        present: set[Key] = set()
        arrow_key: pa.Schema | None = None
        for batch in batches:
            for item in table_resource(engine, plan, where=where_keys(key, batch), with_cursor=False):
                table = pa.Table.from_batches([item]) if isinstance(item, pa.RecordBatch) else item
                if table is None or not table.num_rows:
                    continue
                arrow_key = pa.schema([table.schema.field(name) for name in key])
                present.update(zip(*([key_text(v) for v in table.column(name).to_pylist()] for name in key),
                                   strict=True))
                result.upserted += table.num_rows
                yield table.append_column(DELETED, pa.array([False] * table.num_rows))
        gone = [k for k in keys if k not in present]
        result.deleted = len(gone)
        if gone:
            typed = [typed_key(plan, key, k) for k in gone]
            arrays = {name: pa.array([row[i] for row in typed], type=arrow_key.field(name).type if arrow_key else None)
                      for i, name in enumerate(key)}
            yield pa.table({**arrays, DELETED: pa.array([True] * len(gone))})

    return dlt.resource(
        rows(), name=plan.config.landing_name, primary_key=key, columns=columns,
        write_disposition={"disposition": "merge", "strategy": "upsert"},
    )


def _copy_resource(engine: Engine, plan: TablePlan) -> Any:
    """A whole-table copy, with the column hints every later change load of the table uses."""
    resource = table_resource(engine, full_copy(plan), with_cursor=False)
    hints = dict(resource.compute_table_schema().get("columns") or {})
    resource.apply_hints(columns=_relaxed(hints, list(plan.primary_key or ())))
    return resource


def _relaxed(hints: dict[str, Any], key: Sequence[str]) -> dict[str, Any]:
    """Every column but the key nullable: a delete row carries only its key, and dlt's staging table (and the
    schema contract, which freezes a column's type and nullability alike) must take it."""
    return {name: {**hint, "nullable": hint.get("nullable", True) if name in key else True}
            for name, hint in hints.items()}


def _source(schema: Schema, resources: list[Any]) -> Any:
    @dlt.source(schema=schema, max_table_nesting=0, schema_contract=SCHEMA_CONTRACT)
    def _cdc() -> Any:
        return resources

    return _cdc()


def _rows_loaded(pipeline: dlt.Pipeline, info: Any, tables: Sequence[str]) -> dict[str, int]:
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = normalized.row_counts if normalized is not None else {}
    return {table: int(counts.get(table, 0)) for table in tables}
