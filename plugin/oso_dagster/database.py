"""Connecting to and reflecting source databases: shared by replication, ``oso-sources check``, the template.

Every error leaving this module is an :class:`~oso_dagster.errors.OsoDagsterError` whose message names
the table or host and never contains the password.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, OperationalError

from oso_dagster.errors import ConfigurationError, SourceDatabaseError, TransientSourceError
from oso_dagster.type_mapping import MYSQL_SPATIAL_TYPES, Geometry
from oso_dagster.utils.redact import mask_url, scrub

# Driver-less MySQL URLs default to mysqlclient, which needs a C toolchain; we ship PyMySQL instead.
_DEFAULT_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql"}
TRANSIENT_HINTS = (
    "could not connect",
    "connection refused",
    "connection reset",
    "timeout",
    "timed out",
    "too many connections",
    "server closed the connection",
    "can't connect",
    "lost connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
)
_AUTH_HINTS = (
    "password authentication failed",
    "access denied",
    "authentication failed",
    "no password supplied",
)


def create_source_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; no connection is opened yet."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"The connection string {mask_url(url)!r} is not a SQLAlchemy URL; expected e.g. "
            "postgresql://<user>:<password>@host:5432/dbname, mysql://<user>:<password>@host/dbname or sqlite:///path.db."
        ) from None
    if "+" not in parsed.drivername:
        driver = _DEFAULT_DRIVERS.get(parsed.drivername)
        if driver and importlib.util.find_spec("MySQLdb") is None:
            parsed = parsed.set(drivername=f"{parsed.drivername}+{driver}")
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise ConfigurationError(
            f"No SQLAlchemy dialect is installed for {parsed.drivername!r} (from {mask_url(url)!r}): "
            "install the dialect's package next to oso-dagster."
        ) from None
    except Exception as exc:
        raise ConfigurationError(
            f"Cannot use connection string {mask_url(url)!r}: {scrub(str(exc), [url])}"
        ) from None
    if engine.dialect.name in ("mysql", "mariadb"):
        sa.event.listen(engine, "connect", _mysql_session_in_utc)
        _know_spatial_types(engine)
    return engine


def _know_spatial_types(engine: Engine) -> None:
    """Teach the MySQL dialect its spatial type names (as GeoAlchemy does), so reflection can tell them apart."""
    names = engine.dialect.ischema_names  # type: ignore[attr-defined]
    for name in MYSQL_SPATIAL_TYPES:
        names.setdefault(name, Geometry)


def _mysql_session_in_utc(dbapi_connection: object, _record: object) -> None:
    """MySQL TIMESTAMPs are instants shown in the session time zone; read them in UTC so they land exact."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute("SET time_zone = '+00:00'")
    finally:
        cursor.close()


def describe(engine: Engine) -> str:
    """``dialect://user@host/db`` for messages (password hidden)."""
    return engine.url.render_as_string(hide_password=True)


def database_error(exc: BaseException, engine: Engine, doing: str) -> SourceDatabaseError:
    """Turn a driver error into one of ours: transient (retry) or permanent, with the password scrubbed."""
    secret = engine.url.render_as_string(hide_password=False)
    original = getattr(exc, "orig", None) or exc
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    message = scrub(first_line, [secret, engine.url.password or ""])
    text = message.lower()
    where = describe(engine)
    if any(hint in text for hint in _AUTH_HINTS):
        return SourceDatabaseError(
            f"Login to {where} was refused while {doing}: {message}. "
            "Check the user and password in the secret."
        )
    if isinstance(exc, OperationalError) and any(hint in text for hint in TRANSIENT_HINTS):
        return TransientSourceError(
            f"Cannot reach {where} while {doing}: {message}. Check that the database is up and reachable "
            "from this machine (host, port, firewall); the run may be retried."
        )
    return SourceDatabaseError(f"The source database {where} failed while {doing}: {message}")


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        raise database_error(exc, engine, "connecting") from None


def list_tables(engine: Engine, schema: str | None = None) -> list[str]:
    try:
        inspector = sa.inspect(engine)
        return sorted(inspector.get_table_names(schema=schema))
    except Exception as exc:
        raise database_error(exc, engine, f"listing tables of schema {schema or '(default)'}") from None


def reflect_table(engine: Engine, table: str, schema: str | None = None) -> sa.Table:
    """Reflect one table; a missing one raises an error naming it and the closest existing names."""
    where = f"{schema}.{table}" if schema else table
    try:
        reflected = sa.Table(table, sa.MetaData(schema=schema), autoload_with=engine, resolve_fks=False)
        if engine.dialect.name == "postgresql":
            _restore_domain_precision(engine, reflected)
        if getattr(engine.dialect, "is_mariadb", False):
            _restore_mariadb_json(engine, reflected)
        return reflected
    except NoSuchTableError:
        existing = list_tables(engine, schema)
        close = difflib.get_close_matches(table, existing, n=3) or difflib.get_close_matches(
            table.lower(), [t.lower() for t in existing], n=3
        )
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise SourceDatabaseError(
            f"Table {where!r} does not exist in {describe(engine)}.{hint} Table names are case-sensitive; "
            "fix the 'table' (or 'schema') entry of this source."
        ) from None
    except Exception as exc:
        raise database_error(exc, engine, f"reading the definition of table {where!r}") from None


def _restore_mariadb_json(engine: Engine, table: sa.Table) -> None:
    """MariaDB's ``json`` is ``longtext`` with a ``CHECK (json_valid(col))``, reflected as ``LONGTEXT``;
    give such columns SQLAlchemy's ``JSON`` type so they land as JSON, as MySQL's do."""
    texts = [c for c in table.columns if isinstance(c.type, sa.String)]
    if not texts:
        return
    query = sa.text(
        "SELECT check_clause FROM information_schema.check_constraints "
        "WHERE constraint_schema = COALESCE(:schema, DATABASE()) AND table_name = :table"
    )
    with engine.connect() as conn:
        found: Sequence[Any] = conn.execute(query, {"schema": table.schema, "table": table.name}).scalars().all()
    clauses = {str(c).replace(" ", "").lower() for c in found}
    for column in texts:
        if f"json_valid(`{column.name.lower()}`)" in clauses:
            column.type = sa.JSON()


def _restore_domain_precision(engine: Engine, table: sa.Table) -> None:
    """SQLAlchemy reflects a domain over ``numeric(10,2)`` as plain ``NUMERIC``, which would land as text;
    take precision and scale from ``information_schema`` so it lands as the decimal it is."""
    domains = [c for c in table.columns if type(c.type).__name__ == "DOMAIN"]
    if not any(isinstance(getattr(c.type, "data_type", None), sa.Numeric) for c in domains):
        return
    query = sa.text(
        "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = COALESCE(:schema, current_schema()) AND table_name = :table"
    )
    with engine.connect() as conn:
        rows: Sequence[Any] = conn.execute(query, {"schema": table.schema, "table": table.name}).all()
    precision: dict[str, tuple[Any, Any]] = {name: (p, s) for name, p, s in rows}
    for column in domains:
        base = getattr(column.type, "data_type", None)
        p, s = precision.get(column.name, (None, None))
        if isinstance(base, sa.Numeric) and not isinstance(base, sa.Float) and p is not None:
            column.type = sa.Numeric(p, s or 0)
