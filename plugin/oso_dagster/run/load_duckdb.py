"""Full-refresh tables into the local DuckDB warehouse without load files.

dlt's file-based path reads every row, writes it to a parquet file, loads that into a staging table and
copies it into the table: four passes, one after the other, with the rows compressed into DuckDB twice.
For a full refresh into DuckDB read as Arrow (connectorx or pyarrow), the same dlt ``sql_table`` resource is
iterated (so the batches, the casts and the column types are exactly those of the dlt path), and DuckDB
consumes the Arrow batches while the source is still being read, into a new version of the table that
replaces the old one in the same transaction. Readers see the old rows or the new ones; a failed or killed
run leaves the old ones, and no staging copy stays behind. See docs/benchmarks.md for what it saves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import dlt
import pyarrow as pa
from dlt.common.libs.pyarrow import get_column_type_from_py_arrow
from dlt.common.schema import Schema

from oso_dagster.errors import ConfigurationError
from oso_dagster.naming import quote_identifier

# the name the Arrow stream is registered under on the DuckDB connection, for the duration of one load
_INCOMING = "oso_incoming_batches"


ARROW_BACKENDS = ("connectorx", "pyarrow")


def loads_directly(destination: str, write_disposition: str, backend: str, incremental: bool) -> bool:
    """True for the tables this module loads: full refreshes read as Arrow into DuckDB.

    A "replace" table with an ``incremental`` keeps going through dlt, which owns the cursor state.
    """
    return (
        destination == "duckdb" and write_disposition == "replace" and backend in ARROW_BACKENDS and not incremental
    )


@dataclass(frozen=True)
class DirectLoad:
    """What one direct load did, for the materialization's metadata."""

    table: str
    qualified_name: str
    rows: int
    seconds: float
    columns: dict[str, dict[str, Any]]  # dlt column schemas, by warehouse column name


def ensure_dataset(pipeline: dlt.Pipeline) -> None:
    """Create the source's schema once, before tables are loaded (concurrently, perhaps) into it."""
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()


def load_table(
    pipeline: dlt.Pipeline,
    resource: Any,
    table_name: str,
    schema: Schema,
    progress: Callable[[int], None] | None = None,
) -> DirectLoad:
    """Stream ``resource``'s Arrow batches into ``table_name`` of the pipeline's dataset, replacing it.

    Safe to call from several threads at once for different tables: each opens its own DuckDB connection
    and transaction. The dataset must exist (:func:`ensure_dataset`).
    """
    started = time.monotonic()
    hints: dict[str, dict[str, Any]] = dict(resource.compute_table_schema().get("columns") or {})
    items = iter(resource)
    first = _first_nonempty(items)
    arrow_schema = first[0].schema if first else None
    columns = warehouse_columns(hints, arrow_schema, schema)
    mapper = pipeline.destination.capabilities().get_type_mapper()
    table_schema: Any = {"name": table_name, "columns": {c["name"]: c for c in columns.values()}}
    types = {source: mapper.to_destination_type(cast(Any, c), table_schema) for source, c in columns.items()}
    counted = _Counter(progress)
    with pipeline.sql_client() as client:
        target = client.make_qualified_table_name(table_name)
        definitions = ", ".join(
            f"{client.escape_column_name(c['name'])} {types[source]}"
            f"{'' if c.get('nullable', True) else ' NOT NULL'}"
            for source, c in columns.items()
        )
        connection = client.native_connection
        with client.begin_transaction():
            client.execute_sql(f"CREATE OR REPLACE TABLE {target} ({definitions})")
            if arrow_schema is not None:
                reader = pa.RecordBatchReader.from_batches(
                    arrow_schema, counted.batches(_batches([*first], items), arrow_schema)
                )
                targets = ", ".join(client.escape_column_name(c["name"]) for c in columns.values())
                sources = ", ".join(quote_identifier(source) for source in columns)
                connection.register(_INCOMING, reader)
                try:
                    connection.execute(f"INSERT INTO {target} ({targets}) SELECT {sources} FROM {_INCOMING}")
                except BaseException:
                    # DuckDB reports a failed read as its own error; the reader's (a connectorx panic on a
                    # dropped connection, a value that does not fit) says what happened
                    if counted.error is not None:  # keep its cause: the driver's error tells transient from not
                        raise counted.error from counted.error.__cause__
                    raise
                connection.unregister(_INCOMING)
    return DirectLoad(
        table=table_name,
        qualified_name=target,
        rows=counted.rows,
        seconds=time.monotonic() - started,
        columns={c["name"]: c for c in columns.values()},
    )


def _first_nonempty(items: Iterator[Any]) -> list[Any]:
    """The first non-empty item, so the Arrow schema is known before DuckDB starts reading."""
    for item in items:
        if item is not None and item.num_rows:
            return [item]
    return []


def _batches(head: Iterable[Any], rest: Iterator[Any]) -> Iterator[pa.RecordBatch]:
    for source in (head, rest):
        for item in source:
            if isinstance(item, pa.Table):
                yield from item.to_batches()
            elif isinstance(item, pa.RecordBatch):
                yield item
            else:  # connectorx yields Arrow; anything else is a bug in the caller, not in the data
                raise TypeError(f"direct DuckDB load expects Arrow batches, got {type(item).__name__}")


def warehouse_columns(
    hints: Mapping[str, dict[str, Any]], arrow_schema: pa.Schema | None, schema: Schema
) -> dict[str, dict[str, Any]]:
    """dlt's column schema for each source column, as the dlt path would land it: reflected hints first,
    the Arrow type where reflection gave none, names normalized by the source's naming convention."""
    names = list(hints)
    if arrow_schema is not None:
        names += [name for name in arrow_schema.names if name not in hints]
        names = [name for name in names if name in arrow_schema.names]
    columns: dict[str, dict[str, Any]] = {}
    for name in names:
        column = dict(hints.get(name) or {"name": name})
        if not column.get("data_type") and arrow_schema is not None:
            column.update(get_column_type_from_py_arrow(arrow_schema.field(name).type))
            column.setdefault("nullable", arrow_schema.field(name).nullable)
        elif not column.get("data_type"):  # an empty table of a type reflection could not name
            column["data_type"] = "text"
        column["name"] = schema.naming.normalize_identifier(name)
        columns[name] = column
    landed: dict[str, str] = {}
    for name, column in columns.items():
        if (other := landed.setdefault(column["name"], name)) != name:
            raise ConfigurationError(
                f"Columns {other!r} and {name!r} both become {column['name']!r} in the warehouse; rename one in "
                "the source, or select the table through a view that renames it."
            )
    return columns




class _Counter:
    """Counts rows as DuckDB pulls them, reports progress every million, and keeps the reader's error."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.rows = 0
        self.error: BaseException | None = None
        self._progress = progress

    def batches(self, batches: Iterator[pa.RecordBatch], arrow_schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        reported = 0
        try:
            for batch in batches:
                if batch.schema != arrow_schema:  # a later batch typed differently (e.g. all nulls): align it
                    batch = batch.cast(arrow_schema)
                self.rows += batch.num_rows
                if self._progress and self.rows - reported >= 1_000_000:
                    reported = self.rows
                    self._progress(self.rows)
                yield batch
        except BaseException as exc:
            self.error = exc
            raise


def landed_columns(pipeline: dlt.Pipeline, landing: str) -> dict[str, dict[str, Any]]:
    """A table's columns as DuckDB holds them (name and nullability), when no load described them."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? ORDER BY ordinal_position", client.dataset_name, landing,
        ) or []
    return {name: {"name": name, "nullable": nullable == "YES"} for name, nullable in rows}
