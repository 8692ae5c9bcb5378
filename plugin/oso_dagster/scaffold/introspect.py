"""Reading a source database's tables for ``oso-new-source``: columns, primary keys and an incremental cursor.

A cursor is chosen only where it is obvious (a NOT NULL timestamp named like an update time) and only
for tables with a primary key, since an incremental load merges on that key. Everything else is left
as full refresh, which is always correct, only slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from oso_dagster.database import check_connection, create_source_engine, describe, list_tables, reflect_table
from oso_dagster.errors import TemplateError
from oso_dagster.naming import warehouse_name
from oso_dagster.scaffold import catalog
from oso_dagster.scaffold.answers import ColumnSpec, TableSpec

# Warehouse spellings of column names, best first. Tier 1 tracks updates; tier 2 only inserts.
UPDATE_NAMES = (
    "updated_at", "modified_at", "last_modified", "last_modified_at", "last_update", "updated", "modified",
    "changed_at", "last_updated", "last_updated_at", "updated_on", "modified_on", "update_time", "last_update_time",
    "last_changed", "last_changed_at", "changed", "changed_on", "mtime", "modification_time", "modified_time",
    "updated_time", "date_modified", "modified_date", "updated_date", "last_update_date", "row_updated_at",
    "date_updated",
)
INSERT_NAMES = (
    "created_at", "inserted_at", "time", "timestamp", "event_time", "created", "created_on", "inserted",
    "occurred_at", "create_time", "ctime", "creation_time", "date_created", "created_date",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Introspection:
    """What was read from the database: its default schema and the selected tables."""

    default_schema: str | None
    schema: str | None
    tables: list[TableSpec]
    seconds: float
    missing: list[str] = field(default_factory=list)  # asked-for tables not found (with missing_ok)


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


def choose_cursor(table: sa.Table, maintained: dict[str, str] | None = None) -> tuple[str | None, str]:
    """The incremental cursor for ``table`` and the evidence for it, or ``None`` and why the table stays full refresh.

    ``maintained`` holds the columns the database itself sets on every update (see :mod:`oso_dagster.scaffold.catalog`);
    they beat a column that is only named like an update time, which the application has to remember to set.
    """
    if not table.primary_key.columns:
        return None, "no primary key, so changed rows could not be merged"
    maintained = maintained or {}
    indexed = _indexed_columns(table)
    candidates = []
    passed_over = []
    for position, column in enumerate(table.columns):
        name = warehouse_name(column.name)
        if column.name in maintained:
            tier, rank = 0, 0
        elif name in UPDATE_NAMES:
            tier, rank = 1, UPDATE_NAMES.index(name)
        elif name in INSERT_NAMES:
            tier, rank = 2, INSERT_NAMES.index(name)
        else:
            continue
        if not _is_timestamp(column):
            passed_over.append(f"{column.name} (not a timestamp)")
        elif column.nullable:
            passed_over.append(f"{column.name} (nullable: rows with NULL would never be read)")
        else:
            candidates.append((tier, column.name not in indexed, rank, position, column.name))
    if not candidates:
        why = ("no NOT NULL timestamp column kept current by a trigger or ON UPDATE, or named like an update or "
               "insert time (updated_at, last_update, modified, created_at, ...)")
        return None, why + (f"; passed over: {', '.join(passed_over)}" if passed_over else "")
    tier, unindexed, _, _, name = min(candidates)
    what = {
        0: f"an update time {maintained.get(name)}",
        1: "named like an update time (no trigger or ON UPDATE seen: the application must set it on every "
           "update)",
        2: "named like an insert time; rows changed later are not re-read",
    }[tier]
    index = "not indexed: each run scans the table" if unindexed else "indexed"
    return name, f"NOT NULL timestamp, {what}; {index}"


def introspect(
    url: str,
    *,
    schema: str | None = None,
    tables: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_views: bool = False,
    missing_ok: bool = False,
    progress: Progress | None = None,
) -> Introspection:
    """Reflect ``tables`` (default: all, less partitions and ``exclude`` globs) of ``schema`` and choose cursors.

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
        views = catalog.view_names(engine, schema)
        where = f"schema {schema!r}" if schema else "the default schema"
        if schema is not None and not existing and not views:
            schemas = sa.inspect(engine).get_schema_names()
            if schema not in schemas:
                raise TemplateError(
                    f"Schema {schema!r} does not exist in {describe(engine)}; existing schemas: "
                    f"{sorted(schemas)}. Fix --schema."
                )
        kids = catalog.children(engine, schema)
        if tables:
            selected = list(tables)
            unknown = [t for t in selected if t not in existing and t not in views]
            if missing_ok:
                selected = [t for t in selected if t not in unknown]
            elif unknown:
                raise TemplateError(_unknown_tables(unknown, existing + views, where))
        else:
            selected = [t for t in existing if t not in kids] + (views if include_views else [])
            left_out = [kids[t] for t in existing if t in kids]
            if left_out:
                say(f"Left out {len(left_out)} table(s) whose rows are read through their parent: "
                    + ", ".join(f"{c.name} ({c.kind} of {c.parent})" for c in left_out))
        selected = apply_excludes(selected, exclude)
        for name in selected:
            if name in kids:
                say(f"Note: {name} is a {kids[name].kind} of {kids[name].parent}; replicating both would land "
                    "its rows twice.")
        if not selected and not missing_ok:
            hint = " (views are offered with --include-views)" if views and not include_views else ""
            raise TemplateError(
                f"{where.capitalize()} of {describe(engine)} has no tables to replicate{hint}. Pass --schema to "
                "read another schema, or loosen --exclude."
            )
        say(f"Reflecting {len(selected)} table(s) from {where} ...")
        specs = []
        for number, name in enumerate(selected, 1):
            reflected = reflect_table(engine, name, schema)
            is_view = name in views
            if is_view:
                cursor, reason = None, VIEW_REASON
            else:
                cursor, reason = choose_cursor(reflected, catalog.maintained_columns(engine, name, schema))
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
                    view=is_view,
                )
            )
            say(f"  [{number}/{len(selected)}] {name}{' (view)' if is_view else ''}: {len(reflected.columns)} "
                f"columns, key {pk or 'none'} ({time.monotonic() - started:.1f}s)")
        missing = [t for t in tables if t not in existing and t not in views]
        return Introspection(default_schema, schema, specs, time.monotonic() - started, missing)
    finally:
        engine.dispose()


VIEW_REASON = ("a view has no primary key: full refresh unless you name a cursor and a key, "
               "--incremental VIEW=COLUMN --primary-key VIEW=COLUMN")


def apply_excludes(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """``names`` without those matching any ``--exclude`` glob (case-sensitive, as table names are)."""
    from fnmatch import fnmatchcase

    return [n for n in names if not any(fnmatchcase(n, p) for p in patterns)]


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


def apply_overrides(tables: list[TableSpec], overrides: dict[str, str], *, introspected: bool,
                    keys: dict[str, list[str]] | None = None) -> None:
    """Apply ``--primary-key TABLE=COLS`` and ``--incremental TABLE=COLUMN``; refuse a table or column not there."""
    by_name = {t.name: t for t in tables}
    for option, choices in (("--primary-key", keys or {}), ("--incremental", overrides)):
        for table_name, value in choices.items():
            table = by_name.get(table_name)
            shown = value if isinstance(value, str) else ",".join(value)
            if table is None:
                raise TemplateError(
                    f"{option} {table_name}={shown}: table {table_name!r} is not among the selected tables "
                    f"({', '.join(repr(n) for n in by_name)}). Add --table {table_name} or fix the name."
                )
            wanted = [value] if isinstance(value, str) else list(value)
            if introspected and table.columns is not None:
                names = [c.name for c in table.columns]
                for column in wanted:
                    if column not in names:
                        raise TemplateError(
                            f"{option} {table_name}={shown}: table {table_name!r} has no column {column!r}; "
                            f"its columns are {', '.join(repr(n) for n in names)} (names are case-sensitive)."
                        )
            if option == "--primary-key":
                table.primary_key = wanted
                table.key_option = True
                continue
            if introspected and table.columns is not None and not table.primary_key:
                what = "is a view" if table.view else "has no primary key"
                raise TemplateError(
                    f"--incremental {table_name}={value}: table {table_name!r} {what}, so changed rows cannot be "
                    f"merged. Name the columns that identify a row with --primary-key {table_name}=COLUMN[,COLUMN], "
                    "or leave it full refresh (drop the option)."
                )
            table.cursor = shown
            table.cursor_reason = "chosen with --incremental"
