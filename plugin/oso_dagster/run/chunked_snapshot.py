"""Full snapshots of large tables in resumable chunks, on the direct DuckDB path.

A full refresh of a table of hundreds of millions of rows that fails at 90% should not start again from zero.
A table with more rows than ``snapshot_chunk_rows`` is read in ranges of its primary key (PostgreSQL tables
without a usable key: ranges of ``ctid`` pages). Each range is committed into the hidden staging table
``_oso_snapshot_<table>`` together with a row in ``_oso_snapshot_chunks`` saying it is done, in one DuckDB
transaction; so after a SIGKILL the next run reads only the ranges without such a row. When the last range
is in, the staging table replaces the table in one transaction: readers see the old table until then.

Consistency: on PostgreSQL every range read by one run is read under one exported snapshot
(``pg_export_snapshot()`` / ``SET TRANSACTION SNAPSHOT``), so one run sees the table as of one moment. A
resumed run reads its remaining ranges under a new snapshot: each key then holds the row as of the first or
the second run (never twice, never missed, since the ranges partition the key space and the outer ranges are
open-ended). MySQL/MariaDB cannot share a snapshot between connections: each range is one consistent read of
its own. See docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import dlt
import pyarrow as pa
import sqlalchemy as sa
from dlt.common.schema import Schema
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from oso_dagster.naming import quote_identifier
from oso_dagster.run import load_duckdb
from oso_dagster.run.load_duckdb import DirectLoad

if TYPE_CHECKING:
    from oso_dagster.run.table_reader import TablePlan

PROGRESS_TABLE = "_oso_snapshot_chunks"
STAGING_PREFIX = "_oso_snapshot_"
_INCOMING = "oso_incoming_chunk"
_KEY_TYPES = (int, str)  # key values stored in the warehouse as JSON and bound back exactly


def staging_table(landing_name: str) -> str:
    return f"{STAGING_PREFIX}{landing_name}"


@dataclass(frozen=True)
class Chunk:
    """One range to read: ``lower <= key < upper`` (``None``: open), or pages ``[lower, upper)`` for ctid."""

    number: int
    lower: list[Any] | None
    upper: list[Any] | None


@dataclass(frozen=True)
class ChunkedLoad(DirectLoad):
    """A direct load done in chunks; what a resumed run skipped is in the metadata."""

    rows_read: int = 0
    chunks_total: int = 0
    chunks_resumed: int = 0

    def progress_metadata(self) -> dict[str, int]:
        return {"rows_read": self.rows_read, "chunks_total": self.chunks_total,
                "chunks_resumed": self.chunks_resumed}


ResourceFor = Callable[[Engine, "TablePlan", Callable[[sa.Table], Any]], Any]


def load_if_large(
    pipeline: dlt.Pipeline, engine: Engine, plan: TablePlan, schema: Schema, resource_for: ResourceFor,
    log: Callable[[str], None],
) -> ChunkedLoad | None:
    """Load ``plan``'s table in chunks when it is larger than ``snapshot_chunk_rows`` or an unfinished
    snapshot of it is waiting; ``None`` when the one-transaction load is the right one (a small table).

    ``resource_for(engine, plan, where)`` builds the table's dlt resource restricted to ``where(table)``.
    """
    config = plan.config
    if config.snapshot_chunk_rows is None:
        return None  # off (the default): the one-transaction load
    chunk_rows: int = config.snapshot_chunk_rows
    landing = config.landing_name
    with pipeline.sql_client() as client:
        kind, chunks = _saved_plan(client, landing) if _table_exists(client, PROGRESS_TABLE) else ("", None)
    name = config.qualified_name
    if chunks is None and _estimated_rows(engine, plan.table) <= chunk_rows:
        return None  # small: no exported snapshot, no plan, the one-transaction load
    with _snapshot_engine(engine) as (reader, planner):
        if chunks is None:
            found = _plan_chunks(planner, plan, chunk_rows)
            if found is None:
                return None
            kind, chunks = found
            with pipeline.sql_client() as client, client.begin_transaction():
                _drop_unfinished(client, landing)
                _ensure_progress_table(client)
                _save_plan(client, landing, kind, chunks)
            log(f"{name}: snapshot in {len(chunks)} chunk(s) of about {chunk_rows:,} rows, by {kind}")
        else:
            log(f"{name}: resuming the unfinished snapshot ({len(chunks)} chunk(s), by {kind})")
        if engine.dialect.name == "postgresql":  # read through SQLAlchemy, which can join the snapshot
            plan = replace(plan, backend="pyarrow")
        return _load_chunks(pipeline, reader, plan, schema, resource_for, kind, chunks, log)


def _load_chunks(
    pipeline: dlt.Pipeline, reader: Engine, plan: TablePlan, schema: Schema, resource_for: ResourceFor, kind: str,
    chunks: Sequence[Chunk], log: Callable[[str], None],
) -> ChunkedLoad:
    started = time.monotonic()
    config = plan.config
    landing = config.landing_name
    key = plan.primary_key
    with pipeline.sql_client() as client:
        done = _done_chunks(client, landing)
        staged = _table_exists(client, staging_table(landing))
    pending = [c for c in chunks if c.number not in done]
    columns: dict[str, dict[str, Any]] = {}
    rows_read = 0

    def read(chunk: Chunk) -> int:
        where = _where(kind, key, chunk)
        resource = resource_for(reader, plan, where)
        rows, found = _load_chunk(pipeline, resource, landing, schema, chunk)
        columns.update(found)
        return rows

    # the first chunk with rows creates the staging table alone; the rest may then be read side by side
    while pending and not staged:
        rows_read += read(pending.pop(0))
        with pipeline.sql_client() as client:
            staged = _table_exists(client, staging_table(landing))
        log(f"{config.qualified_name}: {len(chunks) - len(pending)} of {len(chunks)} chunks, {rows_read:,} rows")
    workers = min(config.snapshot_parallelism, max(1, len(pending)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oso-chunk") as pool:
        for index, rows in enumerate(pool.map(read, pending), 1):
            rows_read += rows
            if index % max(1, len(pending) // 10) == 0 or index == len(pending):
                log(f"{config.qualified_name}: {len(chunks) - len(pending) + index} of {len(chunks)} chunks, "
                    f"{rows_read:,} rows read by this run")
    if not staged:  # every range was empty: nothing to swap in, the one-transaction load lands the empty table
        load = load_duckdb.load_table(pipeline, resource_for(reader, plan, lambda t: sa.true()), landing, schema)
        with pipeline.sql_client() as client, client.begin_transaction():
            _drop_unfinished(client, landing)
        return ChunkedLoad(**vars(load), rows_read=load.rows, chunks_total=len(chunks), chunks_resumed=len(done))
    with pipeline.sql_client() as client, client.begin_transaction():
        target = client.make_qualified_table_name(landing)
        client.execute_sql(f"DROP TABLE IF EXISTS {target}")
        client.execute_sql(
            f"ALTER TABLE {client.make_qualified_table_name(staging_table(landing))} "
            f"RENAME TO {client.escape_column_name(landing)}"
        )
        _drop_unfinished(client, landing)
        (total,), = client.execute_sql(f"SELECT count(*) FROM {target}") or [(0,)]
    if not columns:  # resumed with nothing left to read: the landed columns, as DuckDB holds them
        columns = load_duckdb.landed_columns(pipeline, landing)
    return ChunkedLoad(
        table=landing, qualified_name=target, rows=int(total), seconds=time.monotonic() - started,
        columns=columns, rows_read=rows_read, chunks_total=len(chunks), chunks_resumed=len(done),
    )


def _load_chunk(
    pipeline: dlt.Pipeline, resource: Any, landing: str, schema: Schema, chunk: Chunk
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Read one range into the staging table and record it done, in one transaction."""
    hints: dict[str, dict[str, Any]] = dict(resource.compute_table_schema().get("columns") or {})
    items = iter(resource)
    first = load_duckdb._first_nonempty(items)
    arrow_schema = first[0].schema if first else None
    columns = load_duckdb.warehouse_columns(hints, arrow_schema, schema)
    counted = load_duckdb._Counter(None)
    with pipeline.sql_client() as client:
        staging = client.make_qualified_table_name(staging_table(landing))
        progress = client.make_qualified_table_name(PROGRESS_TABLE)
        connection = client.native_connection
        with client.begin_transaction():
            if arrow_schema is not None:
                if not _table_exists(client, staging_table(landing)):
                    mapper = pipeline.destination.capabilities().get_type_mapper()
                    table_schema: Any = {"name": landing, "columns": {c["name"]: c for c in columns.values()}}
                    definitions = ", ".join(
                        f"{client.escape_column_name(c['name'])} {mapper.to_destination_type(c, table_schema)}"
                        f"{'' if c.get('nullable', True) else ' NOT NULL'}"
                        for c in cast(Any, columns).values()
                    )
                    client.execute_sql(f"CREATE TABLE {staging} ({definitions})")
                reader = pa.RecordBatchReader.from_batches(
                    arrow_schema, counted.batches(load_duckdb._batches([*first], items), arrow_schema)
                )
                targets = ", ".join(client.escape_column_name(c["name"]) for c in columns.values())
                sources = ", ".join(quote_identifier(source) for source in columns)
                incoming = f"{_INCOMING}_{chunk.number}"
                connection.register(incoming, reader)
                try:
                    connection.execute(f"INSERT INTO {staging} ({targets}) SELECT {sources} FROM {incoming}")
                except BaseException:
                    if counted.error is not None:
                        raise counted.error from counted.error.__cause__
                    raise
                finally:
                    connection.unregister(incoming)
            connection.execute(
                f"INSERT INTO {progress} VALUES (?, ?, 'done', NULL, NULL, NULL, ?, now())",
                [landing, chunk.number, counted.rows],
            )
    return counted.rows, {c["name"]: c for c in columns.values()}


def _where(kind: str, key: Sequence[str] | None, chunk: Chunk) -> Callable[[sa.Table], Any]:
    def where(table: sa.Table) -> Any:
        if kind == "ctid":
            parts: list[Any] = []
            if chunk.lower is not None:
                parts.append(sa.text(f"ctid >= '({int(chunk.lower[0])},0)'::tid"))
            if chunk.upper is not None:
                parts.append(sa.text(f"ctid < '({int(chunk.upper[0])},0)'::tid"))
            return sa.and_(sa.true(), *parts)
        assert key is not None
        columns = [table.c[name] for name in key]
        left = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
        parts = []  # the same list, of key comparisons
        for bound, compare in ((chunk.lower, left.__ge__), (chunk.upper, left.__lt__)):
            if bound is not None:
                parts.append(compare(_bound(columns, bound)))
        return sa.and_(sa.true(), *parts)

    return where


def _bound(columns: Sequence[Any], values: Sequence[Any]) -> Any:
    literals = [sa.literal(value, type_=column.type) for column, value in zip(columns, values, strict=True)]
    return literals[0] if len(literals) == 1 else sa.tuple_(*literals)


def _plan_chunks(engine: Engine, plan: TablePlan, chunk_rows: int) -> tuple[str, list[Chunk]] | None:
    """Ranges of about ``chunk_rows`` rows, or ``None`` when the table fits in one."""
    key = plan.primary_key
    if key and all(c in plan.table.c for c in key):
        bounds = _key_bounds(engine, plan.table, key, chunk_rows)
        if bounds is not None:
            return ("key", _ranges(bounds)) if bounds else None
    if engine.dialect.name == "postgresql":
        return "ctid", _ranges([[page] for page in _page_bounds(engine, plan.table, chunk_rows)])
    return None  # no key whose values round-trip exactly: one transaction, as before


def _ranges(bounds: Sequence[list[Any]]) -> list[Chunk]:
    if not bounds:
        return [Chunk(0, None, None)]
    edges: list[list[Any] | None] = [None, *bounds, None]
    return [Chunk(i, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _key_bounds(engine: Engine, table: sa.Table, key: Sequence[str], chunk_rows: int) -> list[list[Any]] | None:
    """Every ``chunk_rows``-th key in key order (keyset steps over the key's index); ``None`` when a key value
    is of a type that does not round-trip through JSON exactly."""
    columns = [table.c[name] for name in key]
    left = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
    bounds: list[list[Any]] = []
    with engine.connect() as conn:
        while True:
            query = sa.select(*columns).order_by(*columns).offset(chunk_rows).limit(1)
            if bounds:
                query = query.where(left >= _bound(columns, bounds[-1])).offset(chunk_rows)
            row = conn.execute(query).first()
            if row is None:
                return bounds
            values = list(row)
            if not all(isinstance(v, _KEY_TYPES) and not isinstance(v, bool) for v in values):
                return None
            bounds.append(values)


def _page_bounds(engine: Engine, table: sa.Table, chunk_rows: int) -> list[int]:
    name = quote_identifier(table.name) if not table.schema else (
        f"{quote_identifier(table.schema)}.{quote_identifier(table.name)}")
    pages: Any
    rows: Any
    with engine.connect() as conn:
        pages, rows = conn.execute(sa.text(
            "SELECT pg_relation_size(CAST(:t AS regclass)) / current_setting('block_size')::int, "
            "greatest(reltuples, 0) FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": name}).one()
        if not rows:
            (rows,) = conn.execute(sa.text(f"SELECT count(*) FROM {name}")).one()
    step = max(1, int(chunk_rows * int(pages) / max(1, int(rows))))
    return list(range(step, int(pages), step))


def _estimated_rows(engine: Engine, table: sa.Table) -> int:
    """The database's own estimate where it keeps one (cheap), else a count."""
    with engine.connect() as conn:
        estimate = None
        if engine.dialect.name == "postgresql":
            name = f"{quote_identifier(table.schema)}.{quote_identifier(table.name)}" if table.schema else (
                quote_identifier(table.name))
            estimate = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                    {"t": name}).scalar()
        elif engine.dialect.name in ("mysql", "mariadb"):
            estimate = conn.execute(sa.text(
                "SELECT table_rows FROM information_schema.tables WHERE table_schema = coalesce(:s, database()) "
                "AND table_name = :t"), {"s": table.schema, "t": table.name}).scalar()
        if estimate is not None and estimate > 0:
            return int(estimate)
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


@contextmanager
def _snapshot_engine(engine: Engine) -> Iterator[tuple[Engine, Engine]]:
    """(readers, planner): on PostgreSQL an engine whose every transaction joins one exported snapshot,
    held open by a connection of its own for the whole run; elsewhere the engine itself."""
    if engine.dialect.name != "postgresql":
        yield engine, engine
        return
    reader = sa.create_engine(engine.url, poolclass=NullPool)
    exporter = reader.connect()
    try:
        exporter.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot = str(exporter.exec_driver_sql("SELECT pg_export_snapshot()").scalar())

        @sa.event.listens_for(reader, "begin")
        def _join_snapshot(conn: sa.Connection) -> None:
            cursor = conn.connection.cursor()
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            cursor.close()

        yield reader, reader
    finally:
        exporter.close()
        reader.dispose()


def _ensure_progress_table(client: Any) -> None:
    client.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {client.make_qualified_table_name(PROGRESS_TABLE)} ("
        "table_name VARCHAR NOT NULL, chunk INTEGER NOT NULL, state VARCHAR NOT NULL, kind VARCHAR, "
        "lower_bound VARCHAR, upper_bound VARCHAR, rows BIGINT, recorded_at TIMESTAMPTZ)"
    )


def _saved_plan(client: Any, landing: str) -> tuple[str, list[Chunk] | None]:
    rows = client.execute_sql(
        f"SELECT chunk, kind, lower_bound, upper_bound FROM {client.make_qualified_table_name(PROGRESS_TABLE)} "
        "WHERE table_name = ? AND state = 'planned' ORDER BY chunk", landing,
    )
    if not rows:
        return "", None
    return rows[0][1], [Chunk(n, _loads(lo), _loads(hi)) for n, _, lo, hi in rows]


def _save_plan(client: Any, landing: str, kind: str, chunks: Sequence[Chunk]) -> None:
    client.native_connection.executemany(
        f"INSERT INTO {client.make_qualified_table_name(PROGRESS_TABLE)} "
        "VALUES (?, ?, 'planned', ?, ?, ?, NULL, now())",
        [[landing, c.number, kind, _dumps(c.lower), _dumps(c.upper)] for c in chunks],
    )


def _done_chunks(client: Any, landing: str) -> set[int]:
    rows = client.execute_sql(
        f"SELECT chunk FROM {client.make_qualified_table_name(PROGRESS_TABLE)} "
        "WHERE table_name = ? AND state = 'done'", landing,
    )
    return {int(n) for (n,) in rows or ()}


def _drop_unfinished(client: Any, landing: str) -> None:
    """Drop the staging table and the plan of ``landing``; the progress table too once no plan is left in it."""
    client.execute_sql(f"DROP TABLE IF EXISTS {client.make_qualified_table_name(staging_table(landing))}")
    if _table_exists(client, PROGRESS_TABLE):
        progress = client.make_qualified_table_name(PROGRESS_TABLE)
        client.execute_sql(f"DELETE FROM {progress} WHERE table_name = ?", landing)
        if not client.execute_sql(f"SELECT 1 FROM {progress} LIMIT 1"):
            client.execute_sql(f"DROP TABLE {progress}")


def drop_unfinished_snapshot(pipeline: dlt.Pipeline, landing: str) -> bool:
    """Forget an unfinished chunked snapshot of ``landing`` (``oso-sources reset-table``); True if one was there."""
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return False
        found = _table_exists(client, staging_table(landing)) or (
            _table_exists(client, PROGRESS_TABLE) and bool(_saved_plan(client, landing)[1]))
        with client.begin_transaction():
            _drop_unfinished(client, landing)
    return found


def _table_exists(client: Any, name: str) -> bool:
    rows = client.execute_sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        client.dataset_name, name,
    )
    return bool(rows[0][0])


def _dumps(value: list[Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(value: str | None) -> list[Any] | None:
    return None if value is None else json.loads(value)
