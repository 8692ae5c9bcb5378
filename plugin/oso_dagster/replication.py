"""What a replication run does, after Dagster starts it: resolve the secret, reflect, read, load.

Kept apart from :mod:`oso_dagster.factories.sql` so that loading definitions imports none of this.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
import sqlalchemy as sa
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, TableColumn, TableSchema
from dagster_dlt import DagsterDltResource
from dlt.common.schema import Schema
from dlt.common.schema.exceptions import DataValidationError
from dlt.sources.sql_database import sql_table
from sqlalchemy.engine import Engine

from oso_dagster import duckdb_direct, type_mapping
from oso_dagster.database import TRANSIENT_HINTS, create_source_engine, database_error, describe, reflect_table
from oso_dagster.destinations import make_pipeline, warehouse_write_lock, writer_settings
from oso_dagster.duckdb_direct import loads_directly
from oso_dagster.errors import ConfigurationError, OsoDagsterError, SourceDatabaseError, TransientSourceError
from oso_dagster.factories.config import TableConfig
from oso_dagster.factories.sql import SqlSource
from oso_dagster.factories.translator import OsoDltTranslator, asset_key, table_asset_spec
from oso_dagster.naming import NAMING_MODULE
from oso_dagster.schema_changes import schema_change_message
from oso_dagster.settings import Settings
from oso_dagster.utils.redact import scrub
from oso_dagster.utils.secrets import resolver_from_settings


class ReplicationError(OsoDagsterError):
    """An unexpected failure during replication, re-raised with secrets scrubbed from its message."""


@dataclass(frozen=True)
class TablePlan:
    """How one table is read in this run, decided from its reflected definition."""

    config: TableConfig
    table: sa.Table
    backend: str
    primary_key: tuple[str, ...] | None
    casts: dict[str, sa.types.TypeEngine]


def replicate(context: AssetExecutionContext, source: SqlSource) -> Iterator[MaterializeResult]:
    """Replicate the selected tables of ``source``; failures become clear ``dagster.Failure``s."""
    settings = Settings.from_env()
    secrets: list[str] = []
    try:
        url = resolver_from_settings(settings).resolve(source.secret).reveal()
        secrets.append(url)
        yield from _replicate(context, source, settings, url)
    except OsoDagsterError as exc:
        raise Failure(
            description=scrub(str(exc), secrets),
            allow_retries=isinstance(exc, TransientSourceError),
        ) from None
    except Failure:
        raise
    except Exception as exc:
        error = _unwrap_dlt_error(exc)
        if isinstance(error, DataValidationError):
            message = scrub(schema_change_message(source, error), secrets)
            raise Failure(description=message, allow_retries=False) from None
        error = _as_dbapi_error(error)
        if isinstance(error, sa.exc.DBAPIError) and secrets:
            classified = database_error(error, create_source_engine(secrets[0]), "reading rows")
            raise Failure(
                description=str(classified), allow_retries=isinstance(classified, TransientSourceError)
            ) from None
        message = scrub(f"{type(error).__name__}: {error}", secrets)
        raise ReplicationError(f"Replicating source {source.name!r} failed: {message}").with_traceback(
            exc.__traceback__
        ) from None
    except BaseException as exc:  # connectorx's Rust panics are BaseExceptions, which dlt does not wrap
        if type(exc).__name__ != "PanicException" or not secrets:
            raise
        raise _panic_failure(exc, secrets[0]) from None


def _as_dbapi_error(error: BaseException) -> BaseException:
    """A driver's own error (psycopg raises them unwrapped from server-side cursors) as SQLAlchemy's."""
    if isinstance(error, sa.exc.DBAPIError):
        return error
    if type(error).__module__.split(".")[0] not in ("psycopg", "psycopg2", "pymysql", "MySQLdb", "sqlite3"):
        return error
    operational = any(cls.__name__ == "OperationalError" for cls in type(error).__mro__)
    wrapper = sa.exc.OperationalError if operational else sa.exc.DBAPIError
    return wrapper(None, None, error)  # type: ignore[arg-type]


def _panic_failure(exc: BaseException, url: str) -> Failure:
    """A connectorx panic (e.g. the connection reset mid-read) as a clear Failure; retryable when transient."""
    text = str(exc).strip()
    message = scrub(text.splitlines()[0] if text else type(exc).__name__, [url])
    where = describe(create_source_engine(url))
    if any(hint in message.lower() for hint in TRANSIENT_HINTS):
        return Failure(
            description=f"Cannot reach {where} while reading rows: {message}. Check that the database is up and "
            "reachable from this machine; nothing was committed for the failed tables and the run may be retried.",
            allow_retries=True,
        )
    return Failure(description=f"The source database {where} failed while reading rows: {message}")


def _replicate(
    context: AssetExecutionContext, source: SqlSource, settings: Settings, url: str
) -> Iterator[MaterializeResult]:
    started = time.monotonic()
    engine = create_source_engine(url)
    selected = context.selected_asset_keys
    configs = [config for config in source.tables if asset_key(source.name, config) in selected]
    plans, broken = _plan_tables(context, engine, configs)
    for plan in plans:
        context.log.info(
            f"{plan.config.qualified_name}: backend={plan.backend}, "
            f"{'incremental on ' + str(plan.config.cursor_column) if plan.config.incremental else 'full refresh'}"
            f"{', lossless casts: ' + ', '.join(plan.casts) if plan.casts else ''}"
        )
    pipeline = make_pipeline(settings, source.name)
    destination = settings.destination
    direct = [p for p in plans if loads_directly(destination, p.config.write_disposition, p.backend)]
    via_dlt = [p for p in plans if not loads_directly(destination, p.config.write_disposition, p.backend)]
    failed: list[BaseException] = []  # direct loads that failed; raised once the other tables landed
    with warehouse_write_lock(settings), writer_settings(settings):
        if direct:
            yield from _load_direct_tables(context, pipeline, engine, source, direct, failed)
        if via_dlt:
            yield from _load_with_dlt(context, pipeline, engine, source, settings, via_dlt, started)
    if failed:
        raise failed[0]
    if broken:  # the other tables landed; the step still fails, naming what did not
        raise SourceDatabaseError(" ".join(str(exc) for exc in broken))


def _load_with_dlt(
    context: AssetExecutionContext,
    pipeline: dlt.Pipeline,
    engine: Engine,
    source: SqlSource,
    settings: Settings,
    plans: Sequence[TablePlan],
    started: float,
) -> Iterator[MaterializeResult]:
    """Run dlt's pipeline (extract, normalize, load files) for the tables that need its merge or formats."""
    destination = settings.destination
    dlt_source = build_dlt_source(source.name, engine, plans)
    secret_label = f"{source.secret.group_name}/{source.secret.key}"
    translator = OsoDltTranslator(
        {p.config.landing_name: table_asset_spec(source.name, p.config, destination, secret_label) for p in plans}
    )
    file_format = "jsonl" if destination == "bigquery" and any(
        type_mapping.has_nested(p.table.columns, engine.dialect.name) for p in plans
    ) else "parquet"
    with _extract_workers(source.options.concurrency):
        results = list(
            DagsterDltResource().run(
                context=context,
                dlt_source=dlt_source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=translator,
                loader_file_format=file_format,
            )
        )
    for plan in plans:
        if plan.config.reconcile_deletes:
            removed = reconcile_deletes(pipeline, engine, plan)
            context.log.info(f"{plan.config.qualified_name}: removed {removed} row(s) whose key is gone")
    elapsed = time.monotonic() - started
    by_key = {asset_key(source.name, p.config): p for p in plans}
    for result in results:
        plan = by_key[result.asset_key]
        extra: dict[str, Any] = {
            "backend": plan.backend,
            "loader": "dlt",
            "duration_s": MetadataValue.float(round(elapsed, 3)),
            "write_disposition": plan.config.write_disposition,
        }
        if "rows_loaded" not in (result.metadata or {}):
            extra["rows_loaded"] = MetadataValue.int(0)
        cursor = _cursor_value(pipeline, source.name, plan.config)
        if cursor is not None:
            extra["cursor_value"] = MetadataValue.text(str(cursor))
        yield MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra})


def _load_direct_tables(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source: SqlSource,
    plans: Sequence[TablePlan], errors: list[BaseException],
) -> Iterator[MaterializeResult]:
    """Load each table directly, ``concurrency`` at a time; a failed table (added to ``errors``) does not
    stop the others."""
    duckdb_direct.ensure_dataset(pipeline)
    workers = min(source.options.concurrency, len(plans))
    if workers == 1:
        for plan in plans:
            try:
                yield _load_direct(context, pipeline, engine, source.name, plan)
            except Exception as exc:
                errors.append(exc)
    else:
        yield from _load_direct_in_threads(context, pipeline, engine, source.name, plans, workers, errors)


def _load_direct_in_threads(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str,
    plans: Sequence[TablePlan], workers: int, errors: list[BaseException],
) -> Iterator[MaterializeResult]:
    """Each table reads over its own source connection and writes in its own DuckDB transaction."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oso-direct-load") as pool:
        futures = [pool.submit(_load_direct, context, pipeline, engine, source_name, plan) for plan in plans]
        for future in futures:
            try:
                yield future.result()
            except Exception as exc:  # reported after the others landed, as planning errors are
                errors.append(exc)


def _load_direct(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str, plan: TablePlan
) -> MaterializeResult:
    """A full refresh streamed straight into DuckDB and swapped in (see :mod:`oso_dagster.duckdb_direct`)."""
    name = plan.config.qualified_name
    started_at = datetime.now(UTC)
    context.log.info(f"{name}: streaming into DuckDB, replacing the table in one transaction")
    load = duckdb_direct.load_table(
        pipeline,
        _table_resource(engine, plan),
        plan.config.landing_name,
        Schema(source_name, normalizers={"names": NAMING_MODULE}),
        progress=lambda rows: context.log.info(f"{name}: {rows:,} rows streamed"),
    )
    context.log.info(f"{name}: {load.rows:,} rows in {load.seconds:.1f}s")
    return MaterializeResult(
        asset_key=asset_key(source_name, plan.config),
        metadata={
            "rows_loaded": MetadataValue.int(load.rows),
            "backend": plan.backend,
            "loader": "duckdb direct",
            "duration_s": MetadataValue.float(round(load.seconds, 3)),
            "write_disposition": plan.config.write_disposition,
            "dataset_name": pipeline.dataset_name,
            "destination_name": "duckdb",
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "dagster/table_name": f"duckdb.{pipeline.dataset_name}.{load.table}",
            "dagster/column_schema": TableSchema(
                columns=[
                    TableColumn(name=column, type=str(info.get("data_type", "unknown")))
                    for column, info in load.columns.items()
                ]
            ),
        },
    )


def _plan_tables(
    context: AssetExecutionContext, engine: Engine, configs: Sequence[TableConfig]
) -> tuple[list[TablePlan], list[OsoDagsterError]]:
    """Plan every table; one that cannot be read (missing, no key) must not stop the others from loading.

    Transient errors (the database is unreachable) still stop the run at once: retrying the whole step is right.
    """
    plans: list[TablePlan] = []
    broken: list[OsoDagsterError] = []
    for config in configs:
        try:
            plans.append(plan_table(engine, config))
        except TransientSourceError:
            raise
        except OsoDagsterError as exc:
            context.log.error(f"{config.qualified_name}: skipped in this run: {exc}")
            broken.append(exc)
    if not plans and broken:
        raise SourceDatabaseError(" ".join(str(exc) for exc in broken))
    return plans, broken


def plan_table(engine: Engine, config: TableConfig) -> TablePlan:
    """Reflect the table and decide backend, casts and key; raise a clear error for what cannot work."""
    table = reflect_table(engine, config.table, config.schema)
    dialect = engine.dialect.name
    columns = {c.name for c in table.columns}
    primary_key = config.primary_key or tuple(c.name for c in table.primary_key.columns) or None
    if config.primary_key:
        missing = [c for c in config.primary_key if c not in columns]
        if missing:
            raise ConfigurationError(
                f"Table {config.qualified_name!r}: primary_key column(s) {missing} do not exist; "
                f"its columns are {sorted(columns)}."
            )
    if config.cursor_column and config.cursor_column not in columns:
        raise ConfigurationError(
            f"Table {config.qualified_name!r}: the incremental cursor column {config.cursor_column!r} does not "
            f"exist; its columns are {sorted(columns)}."
        )
    if config.soft_delete_column and config.soft_delete_column not in columns:
        raise ConfigurationError(
            f"Table {config.qualified_name!r}: soft_delete_column {config.soft_delete_column!r} does not exist; "
            f"its columns are {sorted(columns)}."
        )
    if config.write_disposition == "merge" and not primary_key:
        raise ConfigurationError(
            f"Table {config.qualified_name!r} is incremental (merged on its primary key) but has no primary key: "
            f'add "primary_key": "<column>" (or a list of columns) to its entry in sql_assets, or set '
            f'"write_disposition": "append" to load new rows without de-duplication.'
        )
    casts = {
        c.name: cast for c in table.columns if (cast := type_mapping.source_cast(c.type, dialect)) is not None
    }
    backend = config.backend
    if backend == "auto":
        backend = "connectorx" if type_mapping.connectorx_reads_exactly(table.columns, dialect) else "pyarrow"
    return TablePlan(config=config, table=table, backend=backend, primary_key=primary_key, casts=casts)


SCHEMA_CONTRACT: dict[str, str] = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}


def build_dlt_source(name: str, engine: Engine, plans: Sequence[TablePlan]) -> Any:
    """A dlt source with one ``sql_table`` resource per plan, named by its landing table."""
    resources = [_table_resource(engine, plan) for plan in plans]
    schema = Schema(name, normalizers={"names": NAMING_MODULE})

    # New tables and columns evolve; a column whose type changes fails instead of landing in a silent
    # variant column (``col__v_text``) or being coerced: see schema_change_message.
    @dlt.source(schema=schema, max_table_nesting=0, schema_contract=SCHEMA_CONTRACT)
    def _source() -> Any:
        return resources

    return _source()


def _table_resource(engine: Engine, plan: TablePlan) -> Any:
    config = plan.config
    dialect = engine.dialect.name
    decimals = type_mapping.connectorx_decimals(plan.table.columns, dialect) if plan.backend == "connectorx" else {}
    casts = {**plan.casts, **{name: sa.Text() for name in decimals}}
    flag = _integer_flag(plan)

    def column(table: sa.Table, name: str) -> Any:
        if name == flag:  # 0 means "not deleted": send NULL, which dlt's hard_delete keeps
            return sa.case((table.c[name] != 0, table.c[name]), else_=sa.null()).label(name)
        return sa.cast(table.c[name], casts[name]).label(name) if name in casts else table.c[name]

    def cast_query(query: sa.sql.Select, table: sa.Table) -> sa.sql.Select:
        if not casts and flag is None:
            return query
        return query.with_only_columns(*[column(table, c.name) for c in table.columns])

    backend_kwargs: dict[str, Any] = {}
    if plan.backend == "connectorx":
        # stream bounded record batches instead of materialising the whole table
        backend_kwargs = {"return_type": "arrow_stream", "batch_size": config.chunk_size}
    resource = sql_table(
        credentials=engine,
        table=config.table,
        schema=config.schema,
        metadata=plan.table.metadata,
        incremental=_cursor(config),
        chunk_size=config.chunk_size,
        backend=plan.backend,  # type: ignore[arg-type]
        backend_kwargs=backend_kwargs,
        reflection_level="full",
        type_adapter_callback=lambda sql_type: type_mapping.dlt_type(sql_type, dialect),
        query_adapter_callback=cast_query,
        write_disposition=config.write_disposition,
        primary_key=list(plan.primary_key) if plan.primary_key else None,
    )
    if decimals:
        resource.add_map(lambda item: parse_decimals(item, config.qualified_name, decimals))
    if config.soft_delete_column:
        # dlt's merge removes rows whose hard_delete column is true (bool) or non-null (other types)
        deleted = config.soft_delete_column
        resource.apply_hints(columns={deleted: {"name": deleted, "hard_delete": True}})
    return resource.with_name(config.landing_name)


def _integer_flag(plan: TablePlan) -> str | None:
    """An integer soft-delete column (MySQL's BOOLEAN is TINYINT(1)): dlt would delete on any non-null value."""
    name = plan.config.soft_delete_column
    if name is None or name in plan.casts:
        return None
    sql_type = plan.table.c[name].type
    return name if isinstance(sql_type, sa.Integer) and not isinstance(sql_type, sa.Boolean) else None


def _keys_table(config: TableConfig) -> str:
    return f"_oso_keys__{config.landing_name}"


def reconcile_deletes(pipeline: dlt.Pipeline, engine: Engine, plan: TablePlan) -> int:
    """Remove warehouse rows of an incremental table whose primary key no longer exists in the source.

    Runs after the table's load, so the key snapshot is newer than every loaded row: a row inserted
    meanwhile is in the snapshot (kept), a row deleted meanwhile is not (removed). The keys travel through
    dlt into a key-only table in the same dataset (streamed in ``chunk_size`` batches, memory stays
    bounded), then one anti-join ``DELETE`` runs in the warehouse with identifiers quoted by dlt.
    """
    config = plan.config
    key = list(plan.primary_key or ())
    casts = {c: plan.casts[c] for c in key if c in plan.casts}

    def keys_only(query: sa.sql.Select, table: sa.Table) -> sa.sql.Select:
        return query.with_only_columns(
            *[sa.cast(table.c[c], casts[c]).label(c) if c in casts else table.c[c] for c in key]
        )

    dialect = engine.dialect.name
    keys = sql_table(
        credentials=engine,
        table=config.table,
        schema=config.schema,
        metadata=plan.table.metadata,
        chunk_size=config.chunk_size,
        backend="pyarrow" if plan.backend == "connectorx" else plan.backend,  # type: ignore[arg-type]
        reflection_level="full",
        included_columns=key,
        type_adapter_callback=lambda sql_type: type_mapping.dlt_type(sql_type, dialect),
        query_adapter_callback=keys_only,
        write_disposition="replace",
    ).with_name(_keys_table(config))
    pipeline.run(keys, schema_contract=SCHEMA_CONTRACT)
    schema = pipeline.default_schema
    if config.landing_name not in schema.tables:
        return 0
    normalize = schema.naming.normalize_identifier
    with pipeline.sql_client() as client:
        target = client.make_qualified_table_name(config.landing_name)
        snapshot = client.make_qualified_table_name(_keys_table(config))
        match = " AND ".join(
            f"k.{client.escape_column_name(normalize(c))} = t.{client.escape_column_name(normalize(c))}" for c in key
        )
        before = client.execute_sql(f"SELECT count(*) FROM {target}")[0][0]
        client.execute_sql(f"DELETE FROM {target} AS t WHERE NOT EXISTS (SELECT 1 FROM {snapshot} AS k WHERE {match})")
        after = client.execute_sql(f"SELECT count(*) FROM {target}")[0][0]
        client.execute_sql(f"DELETE FROM {snapshot} WHERE true")  # BigQuery needs a WHERE
    return int(before) - int(after)


def parse_decimals(item: Any, table: str, decimals: Mapping[str, tuple[int, int]]) -> Any:
    """Parse the decimal columns connectorx read as text into Arrow ``decimal128(p, s)``.

    ``safe=True``: a value that does not fit raises instead of being rounded. Only PostgreSQL's special
    values can: a ``numeric(p, s)`` column may hold ``NaN`` (and ``Infinity`` since PostgreSQL 14), which no
    warehouse decimal holds.
    """
    import pyarrow as pa

    if not isinstance(item, (pa.Table, pa.RecordBatch)):
        return item
    for name, (precision, scale) in decimals.items():
        index = item.schema.get_field_index(name)
        if index < 0 or not pa.types.is_string(item.schema.field(index).type):
            continue
        target = pa.decimal128(precision, scale)
        try:
            parsed = item.column(index).cast(target, safe=True)
        except pa.ArrowInvalid as exc:
            raise ConfigurationError(
                f"Table {table!r}, column {name!r} (numeric({precision},{scale})) holds a value a "
                f"decimal({precision},{scale}) cannot: {exc}. PostgreSQL allows NaN and Infinity in numeric "
                f'columns; set "backend": "pyarrow" for this table, or cast the column to text in a view.'
            ) from None
        item = item.set_column(index, item.schema.field(index).with_type(target), parsed)
    return item


def _cursor(config: TableConfig) -> Any:
    """A fresh copy of the table's ``incremental`` for this run.

    Merged tables need no boundary de-duplication: rows re-read at the cursor value replace themselves
    by primary key. Turning dlt's off (``primary_key=()``) keeps the state to the cursor value alone,
    instead of one hash per row that shares the last cursor value.
    """
    if config.incremental is None:
        return None
    cursor = config.incremental.copy()
    if config.write_disposition == "merge":
        cursor.primary_key = ()
    return cursor


def _cursor_value(pipeline: dlt.Pipeline, source_name: str, config: TableConfig) -> Any:
    if not config.cursor_column:
        return None
    try:
        resources = pipeline.state["sources"][source_name]["resources"]  # type: ignore[index]
        return resources[config.landing_name]["incremental"][config.cursor_column]["last_value"]
    except (KeyError, TypeError):
        return None


def _unwrap_dlt_error(exc: BaseException) -> BaseException:
    """dlt wraps the real error in PipelineStepFailed/ResourceExtractionError; surface the innermost cause."""
    seen = exc
    while seen.__cause__ is not None or getattr(seen, "exception", None) is not None:
        inner = getattr(seen, "exception", None) or seen.__cause__
        if inner is None or inner is seen:
            break
        seen = inner
    return seen


@contextlib.contextmanager
def _extract_workers(concurrency: int) -> Iterator[None]:
    """dlt reads ``EXTRACT__WORKERS`` for how many resources it extracts at once."""
    previous = os.environ.get("EXTRACT__WORKERS")
    os.environ["EXTRACT__WORKERS"] = str(concurrency)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("EXTRACT__WORKERS", None)
        else:
            os.environ["EXTRACT__WORKERS"] = previous
