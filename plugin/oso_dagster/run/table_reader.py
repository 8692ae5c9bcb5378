"""How one table is read: its plan (backend, lossless casts, key), decided from the reflected table, and the
dlt ``sql_table`` resource that reads it. Both load paths (dlt's files, and the direct DuckDB load) use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dlt
import sqlalchemy as sa
from dagster import AssetExecutionContext
from dlt.common.schema import Schema
from dlt.common.schema.typing import TDataType, TSchemaContractDict
from dlt.sources.sql_database import sql_table
from sqlalchemy.engine import Engine

from oso_dagster import type_mapping
from oso_dagster.database import reflect_table
from oso_dagster.errors import (
    ConfigurationError,
    OsoDagsterError,
    SourceDatabaseError,
    SourceValueError,
    TransientSourceError,
)
from oso_dagster.factories.config import TableConfig
from oso_dagster.naming import NAMING_MODULE
from oso_dagster.run import value_checks
from oso_dagster.run.load_duckdb import ARROW_BACKENDS
from oso_dagster.warehouse.destinations import DUCKDB_TYPE_HINT


@dataclass(frozen=True)
class TablePlan:
    """How one table is read in this run, decided from its reflected definition."""

    config: TableConfig
    table: sa.Table
    backend: str
    primary_key: tuple[str, ...] | None
    casts: dict[str, sa.types.TypeEngine]
    json_text: frozenset[str] = frozenset()  # JSON/array columns, read as their JSON text
    json_as_text: bool = False  # they land as that text (BigQuery), not as JSON
    duckdb_types: Mapping[str, str] = field(default_factory=dict)  # columns read as text, cast by DuckDB
    epochs: Mapping[str, str] = field(default_factory=dict)  # dates read as numbers, ±infinity kept (DuckDB)


def plan_tables(
    context: AssetExecutionContext, engine: Engine, configs: Sequence[TableConfig], destination: str,
    selected: Callable[[TableConfig], bool] | None = None, require_one: bool = True,
) -> tuple[list[TablePlan], list[OsoDagsterError]]:
    """Plan every table; one that cannot be read (missing, no key) must not stop the others from loading.

    Transient errors (the database is unreachable) still stop the run at once: retrying the whole step is right.
    ``selected``: only these tables' problems are reported (CDC plans the source's other tables too);
    ``require_one``: fail when no table could be planned.
    """
    plans: list[TablePlan] = []
    broken: list[OsoDagsterError] = []
    for config in configs:
        try:
            plans.append(plan_table(engine, config, destination))
        except TransientSourceError:
            raise
        except OsoDagsterError as exc:
            if selected is None or selected(config):
                context.log.error(f"{config.qualified_name}: skipped in this run: {exc}")
                broken.append(exc)
    if require_one and not plans and broken:
        raise SourceDatabaseError(" ".join(str(exc) for exc in broken))
    return plans, broken


def table_config_problems(config: TableConfig, table: sa.Table) -> list[str]:
    """What in a table's entry does not fit the reflected table: the rule both a run and ``oso-sources check``
    apply, each message saying the fix."""
    columns = {c.name for c in table.columns}
    name = config.qualified_name
    its = f"its columns are {sorted(columns)}."
    problems = []
    missing = [c for c in (config.primary_key or ()) if c not in columns]
    if missing:
        problems.append(f"Table {name!r}: primary_key column(s) {missing} do not exist; {its}")
    if config.cursor_column and config.cursor_column not in columns:
        problems.append(
            f"Table {name!r}: the incremental cursor column {config.cursor_column!r} does not exist; {its}"
        )
    if config.soft_delete_column and config.soft_delete_column not in columns:
        problems.append(f"Table {name!r}: soft_delete_column {config.soft_delete_column!r} does not exist; {its}")
    unknown = sorted(set(config.columns) - columns)
    if unknown:
        problems.append(f"Table {name!r}: the 'columns' option names {unknown}, which do not exist; {its}")
    primary_key = config.primary_key or tuple(c.name for c in table.primary_key.columns)
    if config.write_disposition == "merge" and not primary_key and not missing:
        problems.append(
            f"Table {name!r} is incremental (merged on its primary key) but has no primary key: "
            'add "primary_key": "<column>" (or a list of columns) to its entry in sql_assets, or set '
            '"write_disposition": "append" to load new rows without de-duplication.'
        )
    return problems


def plan_table(engine: Engine, config: TableConfig, destination: str = "duckdb") -> TablePlan:
    """Reflect the table and decide backend, casts and key; raise a clear error for what cannot work."""
    table = reflect_table(engine, config.table, config.schema)
    dialect = engine.dialect.name
    problems = table_config_problems(config, table)
    if problems:
        raise ConfigurationError(" ".join(problems))
    primary_key = config.primary_key or tuple(c.name for c in table.primary_key.columns) or None
    casts = {
        c.name: cast for c in table.columns if (cast := type_mapping.source_cast(c.type, dialect)) is not None
    }
    backend = config.backend
    if backend == "auto":
        backend = "connectorx" if type_mapping.connectorx_reads_exactly(table.columns, dialect) else "pyarrow"
    json_text = frozenset(c.name for c in table.columns if type_mapping.is_nested(c.type, dialect))
    duckdb_types = {
        c.name: kind for c in table.columns if (kind := type_mapping.duckdb_type(c.type, dialect)) is not None
    }
    epochs = {
        c.name: kind for c in table.columns
        if (kind := type_mapping.epoch_kind(c.type, dialect)) is not None and c.name != config.cursor_column
    }
    if destination != "duckdb" or _extract_is_inexact(engine):
        duckdb_types, epochs = {}, {}
    if config.columns:  # read as the type the user named instead
        casts = {name: cast for name, cast in casts.items() if name not in config.columns}
        json_text = json_text - set(config.columns)
        duckdb_types = {name: kind for name, kind in duckdb_types.items() if name not in config.columns}
        epochs = {name: kind for name, kind in epochs.items() if name not in config.columns}
    if backend not in ARROW_BACKENDS:  # Python's datetime cannot hold infinity either
        epochs = {}
    return TablePlan(
        config=config, table=table, backend=backend, primary_key=primary_key, casts=casts, json_text=json_text,
        json_as_text=destination == "bigquery", duckdb_types=duckdb_types, epochs=epochs,
    )


def _extract_is_inexact(engine: Engine) -> bool:
    """Before PostgreSQL 14, ``extract`` returns a double: intervals keep their text form there."""
    version = getattr(engine.dialect, "server_version_info", None) or ()
    return engine.dialect.name == "postgresql" and bool(version) and version < (14,)


SCHEMA_CONTRACT: TSchemaContractDict = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}


def build_dlt_source(name: str, engine: Engine, plans: Sequence[TablePlan]) -> Any:
    """A dlt source with one ``sql_table`` resource per plan, named by its landing table."""
    resources = [table_resource(engine, plan) for plan in plans]
    schema = Schema(name, normalizers={"names": NAMING_MODULE})

    # New tables and columns evolve; a column whose type changes fails instead of landing in a silent
    # variant column (``col__v_text``) or being coerced: see schema_change_message.
    @dlt.source(schema=schema, max_table_nesting=0, schema_contract=SCHEMA_CONTRACT)
    def _source() -> Any:
        return resources

    return _source()


def table_resource(engine: Engine, plan: TablePlan, where: Callable[[sa.Table], Any] | None = None,
                   with_cursor: bool = True) -> Any:
    """dlt's ``sql_table`` resource for ``plan``; ``where(table)`` restricts it to a range (a chunk of a
    snapshot); ``with_cursor=False`` reads every row without dlt's incremental (a direct first load, which
    records the cursor itself)."""
    config = plan.config
    dialect = engine.dialect.name
    decimals = {
        name: digits for name, digits in type_mapping.connectorx_decimals(plan.table.columns, dialect).items()
        if plan.backend == "connectorx" and name not in config.columns
    }
    casts = {**plan.casts, **{name: sa.Text() for name in decimals}}
    flag = _integer_flag(plan)
    # values a loosely typed source hands out are checked in Python (SQLite, MySQL dates); not with connectorx,
    # which reads PostgreSQL's own strictly typed values
    checked = plan.backend != "connectorx" and dialect in value_checks.CHECKED_DIALECTS
    # connectorx reading MySQL: the zero dates the checked reader turns into NULL are turned so in the query
    zero_dates_in_sql = plan.backend == "connectorx" and dialect in ("mysql", "mariadb")

    def column(table: sa.Table, name: str) -> Any:
        raw = table.c[name]
        if name in config.columns:  # the user's way out: the column as the named type, cast by the database
            return _landed_as(raw, config.columns[name], dialect, config.qualified_name).label(name)
        if name == flag:  # 0 means "not deleted": send NULL, which dlt's hard_delete keeps
            return sa.case((raw != 0, raw), else_=sa.null()).label(name)
        if name in plan.json_text:
            if dialect == "sqlite":
                return value_checks.json_text(raw, config.qualified_name).label(name)
            return type_mapping.json_text(raw, dialect).label(name)
        expression = type_mapping.source_expression(raw, dialect)
        if zero_dates_in_sql and isinstance(raw.type, (sa.Date, sa.DateTime)):
            expression = value_checks.mysql_zero_date_as_null(raw)
        if name in plan.duckdb_types:
            expression = type_mapping.interval_text(raw, dialect)
        if name in plan.epochs:
            expression = type_mapping.epoch_expression(raw, plan.epochs[name])
        if expression is not None:
            return expression.label(name)
        as_text = name in casts and isinstance(casts[name], sa.Text)
        if checked and (read := value_checks.checked_expression(raw, dialect, config.qualified_name,
                                                                as_text)) is not None:
            return read.label(name)
        return sa.cast(raw, casts[name]).label(name) if name in casts else raw

    def cast_query(query: sa.sql.Select, table: sa.Table) -> sa.sql.Select:
        if where is not None:
            query = query.where(where(table))
        if not casts and flag is None and not plan.json_text and not checked and not plan.duckdb_types \
                and not plan.epochs and not config.columns and not zero_dates_in_sql:
            return query
        return query.with_only_columns(*[column(table, c.name) for c in table.columns])

    # dlt's normalizer parses the text of a ``json`` column read as Python objects, losing JSON ``null`` (and
    # writing a top-level string unquoted): there the text travels as text, declared JSON in DuckDB
    json_as_text = plan.json_as_text or plan.backend not in ARROW_BACKENDS
    backend_kwargs: dict[str, Any] = {}
    if plan.backend == "connectorx":
        # stream bounded record batches instead of materialising the whole table
        backend_kwargs = {"return_type": "arrow_stream", "batch_size": config.chunk_size}
    resource = sql_table(
        credentials=engine,
        table=config.table,
        schema=config.schema,
        metadata=plan.table.metadata,
        incremental=_cursor(config) if with_cursor else None,
        chunk_size=config.chunk_size,
        backend=plan.backend,  # type: ignore[arg-type]
        backend_kwargs=backend_kwargs,
        reflection_level="full",
        type_adapter_callback=lambda sql_type: type_mapping.dlt_column_type(sql_type, dialect, json_as_text),
        query_adapter_callback=cast_query,
        write_disposition=config.write_disposition,
        # None: the key dlt reflects; its stub leaves None out although sql_table takes it
        primary_key=list(plan.primary_key) if plan.primary_key else None,  # type: ignore[arg-type]
    )
    if decimals:
        resource.add_map(lambda item: parse_decimals(item, config.qualified_name, decimals))
    if plan.backend == "connectorx":
        resource.add_map(value_checks.check_date_range)
    if zero_dates_in_sql:  # MySQL through connectorx: integers as wide as the pyarrow path reads them
        resource.add_map(widen_integers)
    if plan.epochs:
        epochs = dict(plan.epochs)
        resource.add_map(lambda item: value_checks.epochs_to_dates(item, epochs))
    keep = {*(plan.primary_key or ()), *([config.cursor_column] if config.cursor_column else [])}
    zero_dates = value_checks.nullable_for_zero_dates(plan.table, dialect, keep)
    landed_by_duckdb = {**plan.duckdb_types}
    if config.columns:  # dlt's column-hint shape; these win over the reflected types
        resource.apply_hints(columns={
            name: {"name": name, "data_type": cast(TDataType, kind), "nullable": True}
            for name, kind in config.columns.items()
        })
    if json_as_text and not plan.json_as_text:
        landed_by_duckdb.update(dict.fromkeys(plan.json_text, "JSON"))
    if landed_by_duckdb:
        resource.apply_hints(columns={
            name: {"name": name, "data_type": "text", DUCKDB_TYPE_HINT: kind}  # type: ignore[misc]
            for name, kind in landed_by_duckdb.items()
        })
    if zero_dates:  # their zero dates land as NULL
        resource.apply_hints(columns={name: {"name": name, "nullable": True} for name in zero_dates})
    if config.soft_delete_column:
        # dlt's merge removes rows whose hard_delete column is true (bool) or non-null (other types)
        deleted = config.soft_delete_column
        resource.apply_hints(columns={deleted: {"name": deleted, "hard_delete": True}})
    return resource.with_name(config.landing_name)


def explain_read_error(exc: BaseException, engine: Engine, plan: TablePlan) -> BaseException:
    """A failed read of one table as an error naming the table (and the value, where one is to blame).

    Errors of the connection (drivers', connectorx's) pass through unchanged, to be classified as transient
    or not by the caller; a conversion error is deterministic, so it becomes a :class:`SourceValueError`
    that is not retried.
    """
    if isinstance(exc, OsoDagsterError) or not _is_conversion_error(exc):
        return exc
    diagnosis = value_checks.diagnose_read_error(engine, plan.table, plan.config.qualified_name)
    if diagnosis is not None:
        return diagnosis
    if not isinstance(exc, sa.exc.DBAPIError) and type(exc).__name__ != "DataError":
        return SourceValueError(
            f"Table {plan.config.qualified_name!r} could not be read as its columns' types "
            f"({type(exc).__name__}: {str(exc)[:300]}). Nothing was loaded for this table; a retry would fail "
            "the same way. docs/types.md lists how each type lands; to load it anyway, land the column at fault "
            'as text with "columns": {"<column>": "text"} in the table\'s entry of sql_assets.'

        )
    return exc


def _is_conversion_error(exc: BaseException) -> bool:
    """A value that could not be converted (deterministic), as opposed to a connection failing (maybe not)."""
    if isinstance(exc, (TypeError, ValueError, ArithmeticError)) or type(exc).__module__.startswith("pyarrow"):
        return True
    original = getattr(exc, "orig", None) or exc
    if type(original).__name__ == "DataError":  # psycopg: e.g. "timestamp too large (after year 10K)"
        return True
    return "decode" in str(exc).lower()  # connectorx: "value too large to decode"


_CAST_TYPES: dict[str, sa.types.TypeEngine] = {
    "text": sa.Text(), "bigint": sa.BigInteger(), "double": sa.Double(asdecimal=False), "bool": sa.Boolean(),
    "date": sa.Date(), "timestamp": sa.DateTime(),
}


def _landed_as(column: sa.ColumnElement[Any], kind: str, dialect: str, table: str) -> sa.ColumnElement[Any]:
    """A column read as the dlt type ``kind`` (the ``columns`` option), through a CAST in the source query.

    SQLite's ``CAST(... AS TEXT)`` rounds reals to 15 digits: there each value's exact text is read instead.
    """
    if kind == "text" and dialect == "sqlite":
        read = value_checks.checked_expression(column, dialect, table, as_text=True)
        if read is not None:
            return read
    return sa.cast(column, _CAST_TYPES[kind])


def _integer_flag(plan: TablePlan) -> str | None:
    """An integer soft-delete column (MySQL's BOOLEAN is TINYINT(1)): dlt would delete on any non-null value."""
    name = plan.config.soft_delete_column
    if name is None or name in plan.casts:
        return None
    sql_type = plan.table.c[name].type
    return name if isinstance(sql_type, sa.Integer) and not isinstance(sql_type, sa.Boolean) else None


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
            raise SourceValueError(
                f"Table {table!r}, column {name!r} (numeric({precision},{scale})) holds a value a "
                f"decimal({precision},{scale}) cannot: {exc}. PostgreSQL allows NaN and Infinity in numeric "
                f"columns, which no warehouse decimal holds: land it as text with \"columns\": {{\"{name}\": "
                "\"text\"}} in the table's entry of sql_assets, or fix the values in the source."
            ) from None
        item = item.set_column(index, item.schema.field(index).with_type(target), parsed)
    return item


def widen_integers(item: Any) -> Any:
    """connectorx reads MySQL's ``INT`` as ``int32`` (and the smaller ones narrower); the pyarrow path reads
    ``int64``, and dlt's normalizer takes an Arrow type's width as the column's precision (``INTEGER`` instead of
    ``BIGINT`` in DuckDB). Widened here, both paths land the same column types."""
    import pyarrow as pa

    if not isinstance(item, (pa.Table, pa.RecordBatch)):
        return item
    for index, arrow_field in enumerate(item.schema):
        if pa.types.is_integer(arrow_field.type) and arrow_field.type not in (pa.int64(), pa.uint64()):
            item = item.set_column(index, arrow_field.with_type(pa.int64()), item.column(index).cast(pa.int64()))
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
        cursor.primary_key = ()  # type: ignore[assignment]  # dlt accepts () (no boundary hashes); its stub says str
    return cursor
