"""Reading a source database's tables for ``oso-new-source``: columns, primary keys and an incremental cursor.

A cursor is chosen only where it is obvious (a NOT NULL timestamp named like an update time) and only
for tables with a primary key, since an incremental load merges on that key. Everything else is left
as full refresh, which is always correct, only slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from oso_dagster.database import check_connection, create_source_engine, describe, list_tables, reflect_table
from oso_dagster.errors import TemplateError
from oso_dagster.naming import warehouse_name
from oso_dagster.template import ColumnSpec, TableSpec

# Warehouse spellings of column names, best first. Tier 1 tracks updates; tier 2 only inserts.
UPDATE_NAMES = (
    "updated_at", "modified_at", "last_modified", "last_modified_at", "updated", "modified", "changed_at",
    "last_updated", "last_updated_at", "updated_on", "modified_on", "update_time",
)
INSERT_NAMES = (
    "created_at", "inserted_at", "time", "timestamp", "event_time", "created", "created_on", "inserted",
    "occurred_at", "create_time",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Introspection:
    """What was read from the database: its default schema and the selected tables."""

    default_schema: str | None
    schema: str | None
    tables: list[TableSpec]
    seconds: float


def _is_timestamp(column: sa.Column) -> bool:
    return isinstance(column.type, sa.DateTime)


def _type_name(column: sa.Column, dialect: sa.engine.Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # some reflected types cannot compile back; the class name is enough for docs
        return type(column.type).__name__


def _indexed_columns(table: sa.Table) -> set[str]:
    """Columns that lead an index (or the primary key): a cursor there is cheap to filter on."""
    leading = set()
    for index in table.indexes:
        columns = list(index.columns)
        if columns:
            leading.add(columns[0].name)
    pk = list(table.primary_key.columns)
    if pk:
        leading.add(pk[0].name)
    return leading


def choose_cursor(table: sa.Table) -> tuple[str | None, str]:
    """The incremental cursor for ``table`` and why, or ``None`` and why the table stays full refresh."""
    if not table.primary_key.columns:
        return None, "no primary key, so changed rows could not be merged"
    indexed = _indexed_columns(table)
    candidates = []
    for position, column in enumerate(table.columns):
        name = warehouse_name(column.name)
        for tier, names in enumerate((UPDATE_NAMES, INSERT_NAMES)):
            if name in names and _is_timestamp(column) and not column.nullable:
                unindexed = column.name not in indexed
                candidates.append((tier, unindexed, names.index(name), position, column.name))
    if not candidates:
        return None, "no NOT NULL timestamp column named like updated_at or created_at"
    tier, unindexed, _, _, name = min(candidates)
    what = "an update time" if tier == 0 else "an insert time; rows changed later are not re-read"
    index = "not indexed: each run scans the table" if unindexed else "indexed"
    return name, f"NOT NULL timestamp named like {what}; {index}"


def introspect(
    url: str,
    *,
    schema: str | None = None,
    tables: Sequence[str] = (),
    progress: Progress | None = None,
) -> Introspection:
    """Reflect ``tables`` (default: all) of ``schema`` (default: the connection's) and choose cursors.

    Raises :class:`~oso_dagster.errors.OsoDagsterError` subclasses with the password masked.
    """
    say = progress or (lambda _message: None)
    started = time.monotonic()
    engine = create_source_engine(url)
    try:
        say(f"Connecting to {describe(engine)} ...")
        check_connection(engine)
        default_schema = sa.inspect(engine).default_schema_name
        if schema is not None and schema == default_schema:
            schema = None
        existing = list_tables(engine, schema)
        where = f"schema {schema!r}" if schema else "the default schema"
        if schema is not None and not existing:
            schemas = sa.inspect(engine).get_schema_names()
            if schema not in schemas:
                raise TemplateError(
                    f"Schema {schema!r} does not exist in {describe(engine)}; existing schemas: "
                    f"{sorted(schemas)}. Fix --schema."
                )
        selected = list(tables) if tables else existing
        unknown = [t for t in selected if t not in existing]
        if unknown:
            raise TemplateError(_unknown_tables(unknown, existing, where))
        if not selected:
            raise TemplateError(
                f"{where.capitalize()} of {describe(engine)} has no tables. Pass --schema to read another "
                "schema."
            )
        say(f"Reflecting {len(selected)} table(s) from {where} ...")
        specs = []
        for number, name in enumerate(selected, 1):
            reflected = reflect_table(engine, name, schema)
            cursor, reason = choose_cursor(reflected)
            pk = [c.name for c in reflected.primary_key.columns]
            specs.append(
                TableSpec(
                    name=name,
                    cursor=cursor,
                    cursor_reason=reason,
                    primary_key=pk,
                    columns=[
                        ColumnSpec(c.name, _type_name(c, engine.dialect), bool(c.nullable))
                        for c in reflected.columns
                    ],
                )
            )
            say(f"  [{number}/{len(selected)}] {name}: {len(reflected.columns)} columns, "
                f"key {pk or 'none'} ({time.monotonic() - started:.1f}s)")
        return Introspection(default_schema, schema, specs, time.monotonic() - started)
    finally:
        engine.dispose()


def _unknown_tables(unknown: Sequence[str], existing: Sequence[str], where: str) -> str:
    import difflib

    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, existing, n=3) or [
            e for e in existing if e.lower() == name.lower()
        ]
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    listing = ", ".join(repr(t) for t in existing[:20]) + (" ..." if len(existing) > 20 else "")
    return (
        f"--table {', '.join(parts)} not found in {where}. Table names are case-sensitive; "
        f"existing tables: {listing or 'none'}."
    )


def apply_overrides(tables: list[TableSpec], overrides: dict[str, str], *, introspected: bool) -> None:
    """Apply ``--incremental TABLE=COLUMN`` choices; refuse a table or column that is not there."""
    by_name = {t.name: t for t in tables}
    for table_name, column in overrides.items():
        table = by_name.get(table_name)
        if table is None:
            raise TemplateError(
                f"--incremental {table_name}={column}: table {table_name!r} is not among the selected tables "
                f"({', '.join(repr(n) for n in by_name)}). Add --table {table_name} or fix the name."
            )
        if introspected and table.columns is not None:
            names = [c.name for c in table.columns]
            if column not in names:
                raise TemplateError(
                    f"--incremental {table_name}={column}: table {table_name!r} has no column {column!r}; "
                    f"its columns are {', '.join(repr(n) for n in names)} (names are case-sensitive)."
                )
            if not table.primary_key:
                raise TemplateError(
                    f"--incremental {table_name}={column}: table {table_name!r} has no primary key, so "
                    "changed rows cannot be merged. Leave it full refresh (drop the option), or add a "
                    "primary key to the table and regenerate."
                )
        table.cursor = column
        table.cursor_reason = "chosen with --incremental"
