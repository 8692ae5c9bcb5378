"""A page of changes into DuckDB: re-read the changed keys' current rows, replace them, in one transaction.

The rows are read from the source with the table's own reader (:func:`oso_dagster.run.table_reader.
table_resource`, restricted to the keys), so every value lands exactly as a snapshot lands it; a key the
source no longer has was deleted. Deleting every changed key and inserting what was read is the same
whichever order the changes came in and however often it is repeated: a page applied twice (a run killed
after the warehouse commit, before the log heard of it) gives the same table.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
import pyarrow as pa
import sqlalchemy as sa
from dlt.common.schema import Schema
from sqlalchemy.engine import Engine

from oso_dagster.errors import SourceValueError
from oso_dagster.naming import quote_identifier
from oso_dagster.run import load_duckdb
from oso_dagster.run.cdc import state
from oso_dagster.run.cdc.changes import ChangePage, Key, TableChanges, TableName
from oso_dagster.run.table_reader import TablePlan, table_resource

KEYS_PER_QUERY = 5_000
_ROWS = "oso_cdc_current_rows"


@dataclass
class Fetched:
    """The current rows of one table's changed keys."""

    plan: TablePlan
    changes: TableChanges
    rows: pa.Table | None
    columns: dict[str, dict[str, Any]]  # source column -> dlt column schema (warehouse name in "name")


@dataclass
class Applied:
    upserted: int = 0  # rows inserted or updated
    deleted: int = 0  # changed keys the source no longer has
    truncated: bool = False


def fetch(engine: Engine, plan: TablePlan, changes: TableChanges, schema: Schema) -> Fetched:
    """Read the current rows of ``changes.keys`` from the source, ``KEYS_PER_QUERY`` keys per query."""
    assert plan.primary_key is not None
    key = list(plan.primary_key)
    keys = sorted(changes.keys, key=lambda k: tuple("" if v is None else v for v in k))
    tables: list[pa.Table] = []
    hints: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), KEYS_PER_QUERY):
        batch = [typed_key(plan, key, k) for k in keys[start:start + KEYS_PER_QUERY]]
        resource = table_resource(engine, plan, where=where_keys(key, batch), with_cursor=False)
        hints = dict(resource.compute_table_schema().get("columns") or {})
        for item in resource:
            if isinstance(item, pa.RecordBatch):
                item = pa.Table.from_batches([item])
            if item is not None and item.num_rows:
                tables.append(item)
    rows = pa.concat_tables(tables, promote_options="permissive") if tables else None
    columns = load_duckdb.warehouse_columns(hints, rows.schema if rows is not None else None, schema)
    return Fetched(plan, changes, rows, columns)


def where_keys(key: Sequence[str], batch: Sequence[tuple[Any, ...]]) -> Callable[[sa.Table], Any]:
    def where(table: sa.Table) -> Any:
        if len(key) == 1:
            return table.c[key[0]].in_([values[0] for values in batch])
        return sa.tuple_(*[table.c[name] for name in key]).in_(batch)

    return where


_PARSERS: dict[type, Callable[[str], Any]] = {
    int: int, float: float, decimal.Decimal: decimal.Decimal, uuid.UUID: uuid.UUID,
    dt.datetime: dt.datetime.fromisoformat, dt.date: dt.date.fromisoformat, dt.time: dt.time.fromisoformat,
    bool: lambda text: text.lower() in ("t", "true", "1"),
}


def typed_key(plan: TablePlan, key: Sequence[str], values: Key) -> tuple[Any, ...]:
    """A key as the log gave it (text) as the column's Python type, so every reader binds it as that type."""
    out = []
    for name, text in zip(key, values, strict=True):
        try:
            python_type = plan.table.c[name].type.python_type
        except NotImplementedError:
            python_type = str
        parse = _PARSERS.get(python_type)
        out.append(text if text is None or parse is None else parse(text))
    return tuple(out)


def apply_page(pipeline: dlt.Pipeline, page: ChangePage, fetched: Mapping[TableName, Fetched]) -> dict[str, Applied]:
    """Apply every table's rows and store ``page.end``, all in one DuckDB transaction."""
    applied: dict[str, Applied] = {}
    mapper = pipeline.destination.capabilities().get_type_mapper()
    with pipeline.sql_client() as client, client.begin_transaction():
        connection = client.native_connection
        for done in fetched.values():
            landing = done.plan.config.landing_name
            target = client.make_qualified_table_name(landing)
            result = applied[landing] = Applied(truncated=done.changes.truncated)
            if done.changes.truncated:
                client.execute_sql(f"DELETE FROM {target}")
            landed = _landed_types(client, landing)
            for source, column in done.columns.items():
                if column["name"] not in landed and done.rows is not None and source in done.rows.column_names:
                    table_schema: Any = {"name": landing, "columns": {column["name"]: column}}
                    kind = mapper.to_destination_type(column, table_schema)  # type: ignore[arg-type]
                    client.execute_sql(f"ALTER TABLE {target} ADD COLUMN {client.escape_column_name(column['name'])} "
                                       f"{kind}")
                    landed[column["name"]] = kind
            key = [done.columns[name]["name"] if name in done.columns else name for name in done.plan.primary_key or ()]
            _delete_keys(connection, target, key, landed, done.changes.keys, client.escape_column_name)
            if done.rows is not None:
                names = [s for s in done.columns if s in done.rows.column_names]
                connection.register(_ROWS, done.rows)
                try:
                    targets = ", ".join(client.escape_column_name(done.columns[s]["name"]) for s in names)
                    connection.execute(
                        f"INSERT INTO {target} ({targets}) SELECT {', '.join(quote_identifier(s) for s in names)} "
                        f"FROM {_ROWS}")
                except Exception as exc:
                    raise _explain(done, exc) from exc
                finally:
                    connection.unregister(_ROWS)
                result.upserted = done.rows.num_rows
            result.deleted = len(done.changes.keys) - result.upserted
        state.ensure(client)
        state.save_position(client, page.end)
    return applied


def _delete_keys(connection: Any, target: str, key: Sequence[str], landed: Mapping[str, str],
                 keys: set[Key], escape: Callable[[str], str]) -> None:
    """Delete the rows of every changed key (their text cast to the warehouse column's type).

    The keys travel as DuckDB list parameters, unnested side by side: building an Arrow table from Python
    values would import pandas (about a second) into every catch-up.
    """
    if not keys:
        return
    names = [f"k{i}" for i in range(len(key))]
    columns = [[k[i] for k in keys] for i in range(len(key))]
    unnested = ", ".join(f"unnest(CAST(? AS VARCHAR[])) AS {name}" for name in names)
    match = " AND ".join(
        f"{target}.{escape(column)} = CAST(k.{name} AS {landed.get(column, 'VARCHAR')})"
        for column, name in zip(key, names, strict=True)
    )
    connection.execute(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM (SELECT {unnested}) AS k WHERE {match})",
                       columns)


def _landed_types(client: Any, landing: str) -> dict[str, str]:
    rows = client.execute_sql(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        client.dataset_name, landing,
    ) or []
    return {str(name): str(kind) for name, kind in rows}


def _explain(done: Fetched, exc: Exception) -> Exception:
    """A row that no longer fits the warehouse table: the source changed a column's type."""
    name = done.plan.config.qualified_name
    return SourceValueError(
        f"Table {name!r}: changed rows no longer fit the warehouse table ({type(exc).__name__}: {str(exc)[:300]}). "
        "A column's type probably changed in the source. Nothing of this sync was applied. Copy the table again "
        f"with `oso-sources reset-table <source> {done.plan.config.table}` and sync."
    )
