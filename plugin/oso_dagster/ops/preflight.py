"""Pre-flight checks of a source against its live database, used by ``oso-sources check``.

Each check yields a :class:`Finding`; nothing here writes to the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oso_dagster.database import check_connection, create_source_engine, describe, reflect_table
from oso_dagster.errors import OsoDagsterError
from oso_dagster.factories.config import SqlSource, TableConfig
from oso_dagster.naming import mode_label, quote_identifier
from oso_dagster.run.table_reader import table_config_problems
from oso_dagster.settings import Settings
from oso_dagster.utils.redact import scrub
from oso_dagster.utils.secrets import resolver_from_settings

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    message: str


def check_source(source: SqlSource, settings: Settings | None = None) -> Iterator[Finding]:
    """Secret, connection, tables, keys, cursor indexes and privileges of one source."""
    settings = settings or Settings.from_env()
    try:
        url = resolver_from_settings(settings).resolve(source.secret).reveal()
    except OsoDagsterError as exc:
        yield Finding("error", "secret", str(exc))
        return
    yield Finding("ok", "secret", f"{source.secret.label} resolves")
    try:
        engine = create_source_engine(url)
        check_connection(engine)
    except OsoDagsterError as exc:
        yield Finding("error", "connection", scrub(str(exc), [url]))
        return
    yield Finding("ok", "connection", f"connected to {describe(engine)}")
    try:
        for config in source.tables:
            yield from _check_table(engine, config, source.name)
        if source.options.cdc:
            yield from _check_cdc(engine, source)
        yield from _check_write_access(engine, source)
    finally:
        engine.dispose()


def _check_table(engine: Engine, config: TableConfig, source_name: str = "") -> Iterator[Finding]:
    subject = config.qualified_name
    try:
        table = reflect_table(engine, config.table, config.schema)
    except OsoDagsterError as exc:
        yield Finding("error", subject, str(exc))
        return
    columns = {c.name for c in table.columns}
    primary_key = config.primary_key or tuple(c.name for c in table.primary_key.columns)
    problems = table_config_problems(config, table)
    if config.cdc:
        problems = [*problems, *_cdc_key_problems(engine, config, table, source_name)]
    for problem in problems:
        yield Finding("error", subject, problem)
    cursor = config.cursor_column
    if problems:
        return
    if cursor and not config.cdc and not _is_indexed(engine, table, cursor):  # CDC tables are not read by cursor
        yield Finding(
            "warn",
            subject,
            f"cursor column {cursor!r} has no index starting with it: every incremental read scans the "
            f"whole table. Consider CREATE INDEX ON {subject} ({cursor}).",
        )
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).all()
    except Exception as exc:
        yield Finding("error", subject, f"cannot read rows: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    mode = "change data capture" if config.cdc else mode_label(cursor)
    yield Finding("ok", subject, f"readable, {len(columns)} columns, key {list(primary_key) or 'none'}, {mode}")


def _cdc_key_problems(engine: Engine, config: TableConfig, table: sa.Table, source_name: str) -> list[str]:
    """CDC follows rows by the table's own primary key; PostgreSQL refuses UPDATE and DELETE on a published
    table without one (no replica identity)."""
    name = config.qualified_name
    reflected = tuple(c.name for c in table.primary_key.columns)
    fix = f'add a primary key (ALTER TABLE {name} ADD PRIMARY KEY (...)) or "cdc": False to its entry in sql_assets'
    if not reflected:
        breaks = (f": once in the publication oso_{source_name}, every UPDATE and DELETE of it on the source "
                  "would fail (no replica identity)" if engine.dialect.name == "postgresql" else "")
        return [f"CDC table without a primary key, and CDC follows rows by key{breaks}; {fix}."]
    if config.primary_key and tuple(config.primary_key) != reflected:
        return [f"CDC follows rows by the table's primary key {list(reflected)}, not the configured primary_key "
                f"{list(config.primary_key)}: remove primary_key from its entry, or add \"cdc\": False to it."]
    return []


def _check_cdc(engine: Engine, source: SqlSource) -> Iterator[Finding]:
    """What the server or the credential lacks for change data capture (``cdc=True``), each with its fix."""
    from oso_dagster.run.cdc import mysql, postgres

    dialect = engine.dialect.name
    try:
        if dialect == "postgresql":
            problems = postgres.prerequisites(engine, source.name)
        elif dialect in ("mysql", "mariadb"):
            problems = mysql.prerequisites(engine, source.name)
        else:
            yield Finding("error", "cdc", f"cdc=True reads PostgreSQL's and MySQL/MariaDB's change logs and this "
                          f"database is {dialect}: remove cdc=True (its tables are then copied by cursor or in full).")
            return
    except Exception as exc:
        yield Finding("error", "cdc", f"could not check the CDC prerequisites: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}")
        return
    for problem in problems:
        yield Finding("error", "cdc", problem)
    if not problems:
        log = "logical replication (slot and publication oso_" + source.name + ")" if dialect == "postgresql" \
            else "the row binlog"
        yield Finding("ok", "cdc", f"the server and the credential are ready for CDC through {log}")


def _is_indexed(engine: Engine, table: sa.Table, column: str) -> bool:
    inspector = sa.inspect(engine)
    indexes = inspector.get_indexes(table.name, schema=table.schema)
    leading = [ix["column_names"][0] for ix in indexes if ix.get("column_names")]
    pk = [c.name for c in table.primary_key.columns]
    return column in leading or (bool(pk) and pk[0] == column)


def _check_write_access(engine: Engine, source: SqlSource) -> Iterator[Finding]:
    """Warn when the credential could modify the source: replication needs only SELECT."""
    dialect = engine.dialect.name
    writable: list[str] = []
    try:
        with engine.connect() as conn:
            if dialect == "postgresql":
                for config in source.tables:
                    name = ".".join(quote_identifier(part) for part in (config.schema, config.table) if part)
                    can = conn.execute(
                        sa.text("SELECT has_table_privilege(current_user, :t, 'INSERT,UPDATE,DELETE,TRUNCATE')"),
                        {"t": name},
                    ).scalar()
                    if can:
                        writable.append(config.qualified_name)
            elif dialect in ("mysql", "mariadb"):
                grants = " ".join(str(row[0]).upper() for row in conn.execute(sa.text("SHOW GRANTS")))
                if any(word in grants for word in ("ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE")):
                    writable.append("(database grants)")
            elif dialect == "sqlite":
                import os

                path = engine.url.database or ""
                if path and os.access(path, os.W_OK):
                    writable.append(path)
    except Exception as exc:
        yield Finding("warn", "privileges", f"could not check write privileges: {type(exc).__name__}")
        return
    if writable:
        yield Finding(
            "warn",
            "privileges",
            f"the credential can write to {', '.join(writable)}; replication only reads: use a read-only user.",
        )
    else:
        yield Finding("ok", "privileges", "the credential is read-only for the replicated tables")
