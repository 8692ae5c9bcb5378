"""What SQLAlchemy's inspector does not tell ``oso-new-source``: partitions, views and columns the database
itself keeps current (PostgreSQL update triggers, MySQL/MariaDB ``ON UPDATE CURRENT_TIMESTAMP``).

SQLAlchemy lists a PostgreSQL partition and an inheritance child as ordinary tables; replicating them beside
their parent would land every row twice, so they are found here and left out. Every query reads only the
catalog, never table data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from oso_dagster.database import database_error

# pg_trigger.tgtype bits (PostgreSQL's TRIGGER_TYPE_* in catalog/pg_trigger.h).
_ROW, _BEFORE, _INSERT, _UPDATE = 1, 2, 4, 16


@dataclass(frozen=True)
class Child:
    """A table that holds part of another table's rows: a declarative partition or an inheritance child."""

    name: str
    parent: str
    kind: str  # "partition" or "inheritance child"


def children(engine: Engine, schema: str | None) -> dict[str, Child]:
    """PostgreSQL tables of ``schema`` that are partitions or inheritance children, by name."""
    if engine.dialect.name != "postgresql":
        return {}
    query = sa.text(
        "SELECT c.relname, p.relname, c.relispartition FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = COALESCE(:schema, current_schema()) AND c.relkind IN ('r', 'p')"
    )
    try:
        with engine.connect() as conn:
            rows: Sequence[Any] = conn.execute(query, {"schema": schema}).all()
    except Exception as exc:
        raise database_error(exc, engine, "listing partitions") from None
    return {name: Child(name, parent, "partition" if is_partition else "inheritance child")
            for name, parent, is_partition in rows}


def view_names(engine: Engine, schema: str | None) -> list[str]:
    """Views (and PostgreSQL materialized views) of ``schema``."""
    try:
        inspector = sa.inspect(engine)
        names = set(inspector.get_view_names(schema=schema))
        if engine.dialect.name == "postgresql":
            names |= set(inspector.get_materialized_view_names(schema=schema))
        return sorted(names)
    except Exception as exc:
        raise database_error(exc, engine, f"listing views of schema {schema or '(default)'}") from None


def maintained_columns(engine: Engine, table: str, schema: str | None) -> dict[str, str]:
    """Columns the database sets on every update, with the evidence: ``{column: why}``."""
    try:
        if engine.dialect.name == "postgresql":
            return _pg_trigger_columns(engine, table, schema)
        if engine.dialect.name in ("mysql", "mariadb"):
            return _mysql_on_update_columns(engine, table, schema)
    except Exception as exc:
        raise database_error(exc, engine, f"reading the triggers of table {table!r}") from None
    return {}


def _pg_trigger_columns(engine: Engine, table: str, schema: str | None) -> dict[str, str]:
    """Columns assigned as ``NEW.col :=`` by a BEFORE UPDATE row trigger of the table (or of its partitions)."""
    query = sa.text(
        "SELECT t.tgname, f.proname, f.prosrc, t.tgtype FROM pg_trigger t "
        "JOIN pg_proc f ON f.oid = t.tgfoid "
        "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgrelid IN ("
        "  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "  WHERE c.relname = :table AND n.nspname = COALESCE(:schema, current_schema()) "
        "  UNION SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
        "  JOIN pg_namespace n ON n.oid = c.relnamespace "
        "  WHERE c.relname = :table AND n.nspname = COALESCE(:schema, current_schema()))"
    )
    with engine.connect() as conn:
        rows: Sequence[Any] = conn.execute(query, {"table": table, "schema": schema}).all()
    found: dict[str, str] = {}
    for trigger, function, body, tgtype in sorted(rows):
        if not (tgtype & _ROW and tgtype & _BEFORE and tgtype & _UPDATE):
            continue
        for column in assigned_new_columns(body or ""):
            found.setdefault(column, f"set by BEFORE UPDATE trigger {trigger} (function {function} assigns "
                                     f"NEW.{column})")
    return found


# An assignment statement: it starts a statement (after BEGIN, THEN, ELSE, LOOP or a semicolon), unlike the
# comparison in ``IF NEW.x = 1 THEN``.
_NEW_ASSIGNMENT = re.compile(
    r'(?:^|;|\bBEGIN|\bTHEN|\bELSE|\bLOOP)\s*NEW\s*\.\s*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*:?=(?!=)',
    re.IGNORECASE | re.MULTILINE,
)


def assigned_new_columns(body: str) -> list[str]:
    """Column names a PL/pgSQL body assigns through ``NEW.col :=`` or ``NEW.col =`` (folded as PostgreSQL does)."""
    names = []
    for match in _NEW_ASSIGNMENT.finditer(body):
        raw = match.group(1)
        names.append(raw[1:-1].replace('""', '"') if raw.startswith('"') else raw.lower())
    return names


def _mysql_on_update_columns(engine: Engine, table: str, schema: str | None) -> dict[str, str]:
    query = sa.text(
        "SELECT column_name, extra FROM information_schema.columns "
        "WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :table"
    )
    with engine.connect() as conn:
        rows: Sequence[Any] = conn.execute(query, {"table": table, "schema": schema}).all()
    return {name: f"declared {extra.strip()}" for name, extra in rows
            if "on update current_timestamp" in (extra or "").lower()}
