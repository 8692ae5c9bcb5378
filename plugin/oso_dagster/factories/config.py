"""The per-table configuration of ``sql_assets``: parsed and checked at definitions load, with no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, cast

from dlt.extract.incremental import Incremental

from oso_dagster.errors import ConfigurationError
from oso_dagster.naming import check_source_name, warehouse_name
from oso_dagster.utils.secrets import SecretReference

Backend = Literal["auto", "connectorx", "pyarrow", "pandas", "sqlalchemy"]
WriteDisposition = Literal["merge", "replace", "append"]
BACKENDS: tuple[str, ...] = ("auto", "connectorx", "pyarrow", "pandas", "sqlalchemy")
WRITE_DISPOSITIONS: tuple[str, ...] = ("merge", "replace", "append")
DEFAULT_CHUNK_SIZE = 100_000
DEFAULT_SCHEDULE = "0 3 * * *"
DEFAULT_FRESHNESS_HOURS = 26.0
DEFAULT_ROW_COUNT_TOLERANCE = 0.01
DEFAULT_RETRIES = 3
# resumable chunks are opt-in: their readers are slower than the one-transaction load (docs/benchmarks.md)
DEFAULT_SNAPSHOT_CHUNK_ROWS: int | None = None
DEFAULT_SNAPSHOT_PARALLELISM = 1


class TableOptions(TypedDict, total=False):
    """One entry of the ``tables`` list given to ``sql_assets`` (a plain dict, so it can come from YAML too)."""

    table: str
    """Source table name, exactly as the database spells it (required)."""
    schema: str
    """Source schema; default the connection's default schema."""
    incremental: Incremental[Any]
    """``dlt.sources.incremental("cursor_column")``: read only rows at or past the last cursor, merge on the key."""
    primary_key: str | list[str]
    """Override the reflected primary key (needed for incremental tables that have none)."""
    write_disposition: WriteDisposition
    """Override: ``merge`` (default when incremental), ``replace`` (default otherwise) or ``append``."""
    backend: Backend
    """``auto`` (default) picks connectorx where exact, else pyarrow."""
    chunk_size: int
    """Rows per batch read from the source; bounds memory. Default 100000."""
    freshness_hours: float
    """The asset check fails when the last successful load is older than this. Default: the source's."""
    row_count_tolerance: float
    """Full-refresh tables: allowed relative difference of source and warehouse row counts. Default 0.01."""
    soft_delete_column: str
    """Incremental tables: rows whose value in this column is true (booleans) or non-null (anything else,
    e.g. ``deleted_at``) are removed from the warehouse when merged. Default: none."""
    reconcile_deletes: bool
    """Incremental tables: each run also reads the source's primary keys and removes warehouse rows whose
    key is gone (hard deletes the cursor cannot see). Costs one key-only scan per run. Default False."""
    columns: dict[str, Any]
    """Land a column as another type, cast in the source query: ``{"valid_to": "text"}`` (or dlt's column-hint
    shape, ``{"valid_to": {"data_type": "text"}}``). Types: see :data:`COLUMN_TYPES`. The way out for a value
    the column's own warehouse type cannot hold."""
    snapshot_chunk_rows: int | None
    """Full snapshots of larger tables are read and committed in key ranges of about this many rows, so a
    killed run resumes at the first unfinished range (DuckDB direct path). Default None: off."""
    snapshot_parallelism: int
    """How many ranges of one snapshot are read at once (one source connection each). Default 1."""
    cdc: bool
    """With the source's ``cdc=True``: ``False`` leaves this table out of change data capture (it is then
    read as its ``incremental``/full-refresh entry says). Default: the source's ``cdc``."""


TABLE_KEYS = frozenset(TableOptions.__annotations__)
# dlt data types a column can be landed as with ``columns``, each read through a CAST in the source query
COLUMN_TYPES: tuple[str, ...] = ("text", "bigint", "double", "bool", "date", "timestamp")


@dataclass(frozen=True)
class TableConfig:
    """A validated table entry."""

    table: str
    schema: str | None = None
    incremental: Incremental[Any] | None = None
    primary_key: tuple[str, ...] | None = None
    write_disposition: WriteDisposition = "replace"
    backend: Backend = "auto"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    landing_name: str = field(default="")
    freshness_hours: float | None = DEFAULT_FRESHNESS_HOURS
    row_count_tolerance: float = DEFAULT_ROW_COUNT_TOLERANCE
    soft_delete_column: str | None = None
    reconcile_deletes: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)  # column -> dlt data type (COLUMN_TYPES)
    snapshot_chunk_rows: int | None = DEFAULT_SNAPSHOT_CHUNK_ROWS
    snapshot_parallelism: int = DEFAULT_SNAPSHOT_PARALLELISM
    cdc: bool = False

    @property
    def cursor_column(self) -> str | None:
        return self.incremental.cursor_path if self.incremental is not None else None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


@dataclass(frozen=True)
class SourceOptions:
    """Source-level options of ``sql_assets`` (the ``**options``)."""

    concurrency: int = 1
    """How many tables are read at once (one connection each) from this database."""
    pool: str | None = None
    """Dagster concurrency pool for this source's replication step; default ``oso_source_<name>``."""
    schema: str | None = None
    """Default source schema for every table."""
    backend: Backend = "auto"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    description: str | None = None
    schedule: str | None = DEFAULT_SCHEDULE
    """Cron schedule of this source's sync job (replicate, then build its staging models); ``None`` opts out."""
    freshness_hours: float | None = DEFAULT_FRESHNESS_HOURS
    """Default freshness bound of every table's asset check; ``None`` turns freshness checks off."""
    row_count_tolerance: float = DEFAULT_ROW_COUNT_TOLERANCE
    retries: int = DEFAULT_RETRIES
    """How often a run step is retried (with exponential backoff) after a transient source error."""
    retry_delay_s: float = 30.0
    snapshot_chunk_rows: int | None = DEFAULT_SNAPSHOT_CHUNK_ROWS
    """Default ``snapshot_chunk_rows`` of every table: rows per resumable range of a full snapshot."""
    snapshot_parallelism: int = DEFAULT_SNAPSHOT_PARALLELISM
    """Default ``snapshot_parallelism`` of every table: ranges of one snapshot read at once."""
    cdc: bool = False
    """Change data capture: read the database's change log (PostgreSQL logical replication, MySQL/MariaDB
    binlog) instead of cursors or full copies; inserts, updates and deletes land exactly (docs/cdc.md)."""
    cdc_max_retained_wal_mb: float = 1024.0
    """The source's CDC check fails when the change log held back for this source passes this many MB."""

    @classmethod
    def parse(cls, name: str, options: Mapping[str, Any]) -> SourceOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"sql_assets({name!r}) got unknown option(s) {unknown}; valid options are {sorted(known)}."
            )
        parsed = cls(**options)
        if not isinstance(parsed.concurrency, int) or parsed.concurrency < 1:
            raise ConfigurationError(f"sql_assets({name!r}): concurrency must be a whole number >= 1.")
        _check_backend(name, "<source>", parsed.backend)
        _check_chunk_size(name, "<source>", parsed.chunk_size)
        _check_hours(name, "<source>", parsed.freshness_hours)
        _check_tolerance(name, "<source>", parsed.row_count_tolerance)
        _check_snapshot(name, "<source>", parsed.snapshot_chunk_rows, parsed.snapshot_parallelism)
        if parsed.schedule is not None:
            from dagster._utils.schedules import is_valid_cron_string

            if not isinstance(parsed.schedule, str) or not is_valid_cron_string(parsed.schedule):
                raise ConfigurationError(
                    f"sql_assets({name!r}): schedule {parsed.schedule!r} is not a cron expression such as "
                    "'0 3 * * *' (daily at 03:00) or '@hourly'; use schedule=None for no schedule."
                )
        if not isinstance(parsed.cdc, bool):
            raise ConfigurationError(f"sql_assets({name!r}): cdc must be True or False.")
        if isinstance(parsed.cdc_max_retained_wal_mb, bool) or not isinstance(
                parsed.cdc_max_retained_wal_mb, (int, float)) or parsed.cdc_max_retained_wal_mb <= 0:
            raise ConfigurationError(f"sql_assets({name!r}): cdc_max_retained_wal_mb must be a positive number.")
        if not isinstance(parsed.retries, int) or parsed.retries < 0:
            raise ConfigurationError(f"sql_assets({name!r}): retries must be a whole number >= 0.")
        if not isinstance(parsed.retry_delay_s, (int, float)) or parsed.retry_delay_s < 0:
            raise ConfigurationError(f"sql_assets({name!r}): retry_delay_s must be a number of seconds >= 0.")
        return parsed

    def pool_for(self, name: str) -> str:
        return self.pool or f"oso_source_{name}"


@dataclass(frozen=True)
class SqlSource:
    """Everything ``sql_assets`` was told about one database; what discovery and the CLIs read."""

    name: str
    secret: SecretReference
    tables: tuple[TableConfig, ...]
    options: SourceOptions


def parse_tables(name: str, tables: Sequence[Mapping[str, Any]], options: SourceOptions) -> list[TableConfig]:
    """Validate the ``tables`` argument of ``sql_assets``; raise :class:`ConfigurationError` naming the entry."""
    try:
        check_source_name(name)
    except ValueError as exc:
        raise ConfigurationError(f"sql_assets: {exc}") from None
    if isinstance(tables, (str, bytes)) or not isinstance(tables, Sequence) or not tables:
        raise ConfigurationError(
            f"sql_assets({name!r}): tables must be a non-empty list of dicts such as "
            '[{"table": "events", "incremental": incremental("time")}, {"table": "users"}].'
        )
    configs: list[TableConfig] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(tables):
        config = _parse_table(name, index, entry, options)
        previous = seen.get(config.landing_name)
        if previous is not None:
            raise ConfigurationError(
                f"sql_assets({name!r}): tables {previous!r} and {config.qualified_name!r} both land as "
                f"{config.landing_name!r} in the warehouse; replicate only one of them per source."
            )
        seen[config.landing_name] = config.qualified_name
        configs.append(config)
    return configs


def _parse_table(name: str, index: int, entry: Mapping[str, Any], options: SourceOptions) -> TableConfig:
    where = f"sql_assets({name!r}) table #{index + 1}"
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where} must be a dict like {{'table': 'users'}}, got {type(entry).__name__}.")
    unknown = sorted(set(entry) - TABLE_KEYS)
    if unknown:
        raise ConfigurationError(f"{where} has unknown key(s) {unknown}; valid keys are {sorted(TABLE_KEYS)}.")
    table = entry.get("table")
    if not isinstance(table, str) or not table.strip():
        raise ConfigurationError(f"{where} needs 'table': the source table name as a non-empty string.")
    where = f"sql_assets({name!r}) table {table!r}"
    incremental = entry.get("incremental")
    if incremental is not None and not isinstance(incremental, Incremental):
        raise ConfigurationError(
            f"{where}: 'incremental' must be dlt.sources.incremental('<cursor column>'), "
            f"got {type(incremental).__name__}."
        )
    if incremental is not None and not _is_simple_column(incremental.cursor_path):
        raise ConfigurationError(
            f"{where}: the incremental cursor must be one column name, such as 'updated_at'; "
            f"got {incremental.cursor_path!r}."
        )
    primary_key = entry.get("primary_key")
    if primary_key is not None:
        primary_key = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)
        if not primary_key or not all(isinstance(c, str) and c for c in primary_key):
            raise ConfigurationError(f"{where}: primary_key must be a column name or a list of column names.")
    disposition = entry.get("write_disposition") or ("merge" if incremental is not None else "replace")
    if disposition not in WRITE_DISPOSITIONS:
        raise ConfigurationError(f"{where}: write_disposition must be one of {list(WRITE_DISPOSITIONS)}.")
    backend = entry.get("backend", options.backend)
    _check_backend(name, table, backend)
    chunk_size = entry.get("chunk_size", options.chunk_size)
    _check_chunk_size(name, table, chunk_size)
    freshness_hours = entry.get("freshness_hours", options.freshness_hours)
    _check_hours(name, table, freshness_hours)
    tolerance = entry.get("row_count_tolerance", options.row_count_tolerance)
    _check_tolerance(name, table, tolerance)
    schema = entry.get("schema", options.schema)
    if schema is not None and (not isinstance(schema, str) or not schema):
        raise ConfigurationError(f"{where}: schema must be a non-empty string.")
    soft_delete = entry.get("soft_delete_column")
    reconcile = entry.get("reconcile_deletes", False)
    if soft_delete is not None and (not isinstance(soft_delete, str) or not soft_delete.strip()):
        raise ConfigurationError(f"{where}: soft_delete_column must be a column name, e.g. 'deleted_at'.")
    if not isinstance(reconcile, bool):
        raise ConfigurationError(f"{where}: reconcile_deletes must be True or False.")
    for option, value in (("soft_delete_column", soft_delete), ("reconcile_deletes", reconcile)):
        if value and disposition != "merge":
            raise ConfigurationError(
                f"{where}: {option} needs an incremental table merged on its key (write_disposition 'merge'); "
                f"this table is {disposition!r}. Full-refresh tables already drop deleted rows at every run."
            )
    columns = _parse_columns(where, entry.get("columns"))
    cdc = entry.get("cdc", options.cdc)
    _check_cdc(where, cdc, options.cdc, soft_delete, reconcile, disposition)
    chunk_rows = entry.get("snapshot_chunk_rows", options.snapshot_chunk_rows)
    parallelism = entry.get("snapshot_parallelism", options.snapshot_parallelism)
    _check_snapshot(name, table, chunk_rows, parallelism)
    return TableConfig(
        table=table,
        schema=schema,
        incremental=incremental,
        primary_key=primary_key,
        write_disposition=cast(WriteDisposition, disposition),
        backend=backend,
        chunk_size=chunk_size,
        landing_name=warehouse_name(table),
        freshness_hours=freshness_hours,
        row_count_tolerance=tolerance,
        soft_delete_column=soft_delete,
        reconcile_deletes=reconcile,
        columns=columns,
        snapshot_chunk_rows=chunk_rows,
        snapshot_parallelism=parallelism,
        cdc=cdc,
    )


def _check_cdc(where: str, cdc: object, source_cdc: bool, soft_delete: object, reconcile: object,
               disposition: str) -> None:
    """A CDC table sees deletes in the change log: the options that find deletes otherwise do not apply."""
    if not isinstance(cdc, bool):
        raise ConfigurationError(f"{where}: cdc must be True or False.")
    if cdc and not source_cdc:
        raise ConfigurationError(
            f"{where}: 'cdc': True needs change data capture on for the source: pass cdc=True to sql_assets "
            "(one replication slot or binlog position per source), and 'cdc': False on tables to leave out."
        )
    for option, value in (("soft_delete_column", soft_delete), ("reconcile_deletes", reconcile)):
        if cdc and value:
            raise ConfigurationError(
                f"{where}: {option} does not apply to a CDC table, which sees deletes in the change log; remove "
                "it, or add \"cdc\": False to this table's entry to keep reading it by its cursor."
            )
    if cdc and disposition == "append":
        raise ConfigurationError(
            f"{where}: write_disposition 'append' does not apply to a CDC table (updates and deletes are applied "
            "by key); remove it, or add \"cdc\": False to this table's entry."
        )


def _parse_columns(where: str, raw: object) -> dict[str, str]:
    """``{"col": "text"}`` or ``{"col": {"data_type": "text"}}`` as ``{"col": "text"}``."""
    if raw is None:
        return {}
    example = '{"valid_to": "text"}'
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: columns must be a dict of column name to type, e.g. {example}.")
    parsed: dict[str, str] = {}
    for name, hint in raw.items():
        kind = hint.get("data_type") if isinstance(hint, Mapping) else hint
        extra = sorted(set(hint) - {"data_type", "name"}) if isinstance(hint, Mapping) else []
        if not isinstance(name, str) or not name or kind not in COLUMN_TYPES or extra:
            raise ConfigurationError(
                f"{where}: columns entry {name!r}: {hint!r} is not a type to land it as; use one of "
                f"{list(COLUMN_TYPES)}, e.g. {example} (or {{'data_type': 'text'}})."
            )
        parsed[name] = str(kind)
    return parsed


def _is_simple_column(path: object) -> bool:
    return isinstance(path, str) and bool(path) and not any(ch in path for ch in "[]*$.")


def _check_backend(name: str, table: str, backend: object) -> None:
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"sql_assets({name!r}) table {table!r}: backend {backend!r} is unknown; use one of {list(BACKENDS)}."
        )


def _check_chunk_size(name: str, table: str, chunk_size: object) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ConfigurationError(f"sql_assets({name!r}) table {table!r}: chunk_size must be a whole number >= 1.")


def _check_hours(name: str, table: str, hours: object) -> None:
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0):
        raise ConfigurationError(
            f"sql_assets({name!r}) table {table!r}: freshness_hours must be a positive number of hours or None."
        )


def _check_tolerance(name: str, table: str, tolerance: object) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ConfigurationError(
            f"sql_assets({name!r}) table {table!r}: row_count_tolerance must be a fraction in [0, 1), e.g. 0.01."
        )


def _check_snapshot(name: str, table: str, chunk_rows: object, parallelism: object) -> None:
    """Both must be whole numbers: a fraction of a row or of a reader has no meaning."""
    where = f"sql_assets({name!r}) table {table!r}"
    if chunk_rows is not None and (not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool)
                                   or chunk_rows < 1000):
        raise ConfigurationError(
            f"{where}: snapshot_chunk_rows must be a whole number >= 1000 (rows per resumable range of a full "
            f"snapshot) or None (off), got {chunk_rows!r}."
        )
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or not 1 <= parallelism <= 16:
        raise ConfigurationError(
            f"{where}: snapshot_parallelism must be a whole number from 1 to 16 (ranges read at once, one "
            f"source connection each), got {parallelism!r}."
        )
