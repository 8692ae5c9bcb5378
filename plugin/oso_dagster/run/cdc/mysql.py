"""The MySQL/MariaDB side of CDC: the row binlog, read with ``mysql-replication`` (``pymysqlreplication``).

Only the table and primary key of each row change are kept (``apply`` re-reads the rows), so the binlog must
carry full row images with column names: ``binlog_format=ROW``, ``binlog_row_image=FULL`` and, for the names,
``binlog_row_metadata=FULL`` (without it pymysqlreplication 1.x only sees ``UNKNOWN_COL0``, ``UNKNOWN_COL1``...).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from oso_dagster.errors import SourceDatabaseError
from oso_dagster.run.cdc.binlog_keys import key_columns_only
from oso_dagster.run.cdc.changes import ChangePage, TableName, key_text
from oso_dagster.utils.redact import scrub

_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?((?:`[^`]+`|[\w$]+)(?:\s*\.\s*(?:`[^`]+`|[\w$]+))?)", re.I)
_SETTINGS = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


def _variables(engine: sa.Engine) -> dict[str, str]:
    names = ("log_bin", *_SETTINGS, "binlog_expire_logs_seconds", "expire_logs_days")
    with engine.connect() as conn:
        listed = ", ".join(f"'{name}'" for name in names)
        rows = conn.exec_driver_sql(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({listed})").all()
    return {str(name).lower(): str(value) for name, value in rows}


def _setting_problems(engine: sa.Engine) -> list[str]:
    """One sentence per binlog setting that CDC cannot work with, each with its fix."""
    found = _variables(engine)
    if found.get("log_bin", "OFF").upper() not in ("ON", "1"):
        return ["The binary log is off (log_bin=OFF): add `log_bin = mysql-bin`, `server_id = 1`, "
                "`binlog_format = ROW`, `binlog_row_image = FULL` and `binlog_row_metadata = FULL` under [mysqld] "
                "in my.cnf and restart the server (log_bin cannot be switched on at runtime)."]
    problems = []
    for name, wanted in _SETTINGS.items():
        value = found.get(name)
        if value is None and name == "binlog_row_metadata":
            problems.append("The server has no binlog_row_metadata (MySQL < 8.0.1, MariaDB < 10.5): the binlog "
                            "lacks column names; upgrade the server to use CDC.")
        elif value is not None and value.upper() != wanted:
            problems.append(f"{name} is {value}, CDC needs {wanted}: run `SET GLOBAL {name} = '{wanted}';` and add "
                            f"`{name} = {wanted}` under [mysqld] in my.cnf so it survives a restart.")
    return problems


def check_binlog(engine: sa.Engine, source_name: str) -> None:
    """Fail before a snapshot is taken when the binlog cannot carry the keys of row changes."""
    problems = _setting_problems(engine)
    if problems:
        raise SourceDatabaseError(f"Source {source_name!r} cannot use CDC: " + " ".join(problems))


def prerequisites(engine: sa.Engine, source_name: str) -> list[str]:
    """Every setting and grant CDC lacks on this server, each a sentence with the SQL that fixes it."""
    problems = _setting_problems(engine)
    with engine.connect() as conn:
        version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
        user = str(conn.exec_driver_sql("SELECT CURRENT_USER()").scalar())
        grants = [str(row[0]) for row in conn.exec_driver_sql("SHOW GRANTS FOR CURRENT_USER()")]
    held: set[str] = set()
    for grant in grants:
        match = re.match(r"GRANT\s+(.*?)\s+ON\s+\*\.\*\s+TO\s", grant, re.I | re.S)
        if match:
            held.update(part.strip().upper() for part in match[1].split(","))
    name, _, host = user.rpartition("@")
    who = f"'{name}'@'{host}'"
    mariadb_105 = "mariadb" in version.lower() and tuple(map(int, re.findall(r"\d+", version)[:2])) >= (10, 5)
    needed = [("REPLICATION SLAVE",), ("BINLOG MONITOR", "REPLICATION CLIENT") if mariadb_105 else
              ("REPLICATION CLIENT",)]
    for names in needed:
        if "ALL PRIVILEGES" not in held and not held.intersection(names):
            problems.append(f"User {who} lacks {names[0]}, needed to read the binlog of source {source_name!r}: "
                            f"run `GRANT {names[0]} ON *.* TO {who};` as an administrator.")
    return problems


def current_position(engine: sa.Engine) -> dict[str, Any]:
    """Where the binlog ends now: a snapshot taken after this misses nothing that pages() reads from it."""
    with engine.connect() as conn:
        try:
            row = conn.exec_driver_sql("SHOW MASTER STATUS").first()
        except sa.exc.DBAPIError:  # MySQL >= 8.4 only knows the new spelling
            row = conn.exec_driver_sql("SHOW BINARY LOG STATUS").first()
    if row is None:
        raise SourceDatabaseError("The binary log is off (SHOW MASTER STATUS is empty): add `log_bin = mysql-bin` "
                                  "under [mysqld] in my.cnf and restart the server.")
    return {"file": str(row[0]), "pos": int(row[1])}


def expire_seconds(engine: sa.Engine) -> float | None:
    """How long the server keeps binlogs (a CDC source must sync more often); None: kept forever."""
    found = _variables(engine)
    seconds = float(found.get("binlog_expire_logs_seconds") or 0)
    days = float(found.get("expire_logs_days") or 0)
    return seconds if seconds > 0 else (days * 86400 if days > 0 else None)


def _order(position: Mapping[str, Any]) -> tuple[str, int, int]:
    """Positions compare by file number first (binlog.000999 < binlog.1000000), then offset."""
    stem, _, number = str(position["file"]).rpartition(".")
    return (stem, int(number) if number.isdigit() else 0, int(position["pos"]))


def _unquote(name: str) -> list[str]:
    return [part.strip().strip("`") for part in re.findall(r"`[^`]+`|[^.`\s]+", name)]


def pages(url: str, source_name: str, start: dict[str, Any], end: dict[str, Any],
          tables: Mapping[TableName, Sequence[str]], max_changes: int | None = 50_000) -> Iterator[ChangePage]:
    """The keys changed in ``tables`` from ``start`` up to ``end``, in pages of whole transactions."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    parsed = make_url(url)
    secrets = [url, parsed.password or ""]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            files = {str(row[0]) for row in conn.exec_driver_sql("SHOW BINARY LOGS")}
    except sa.exc.DBAPIError as error:
        raise SourceDatabaseError(scrub(f"Source {source_name!r}: SHOW BINARY LOGS failed: {error}", secrets)) from None
    finally:
        engine.dispose()
    if start["file"] not in files:
        raise SourceDatabaseError(
            f"Source {source_name!r}: binlog file {start['file']!r}, where CDC stopped, is no longer on the server "
            "(expired or purged), so the changes since are lost. Run `oso-sources drop-cdc "
            f"{source_name}` and then a sync, which takes a new snapshot.")
    # no database: the binlog is the server's, and pymysqlreplication points its own queries at information_schema
    settings = {"host": parsed.host or "localhost", "port": parsed.port or 3306, "user": parsed.username or "",
                "password": parsed.password or ""}
    stream = BinLogStreamReader(
        connection_settings=settings, server_id=random.randint(1_000_000, 4_000_000_000), resume_stream=True,
        blocking=False, log_file=start["file"], log_pos=int(start["pos"]),
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent, XidEvent, MariadbGtidEvent],
        only_schemas={schema for schema, _ in tables}, only_tables={table for _, table in tables})
    page, in_transaction, stop = ChangePage(end=dict(end)), False, _order(end)
    keys_only = key_columns_only(tables)  # decode only the key columns of each row (binlog_keys.py)
    keys_only.__enter__()
    try:
        for event in stream:
            here = {"file": stream.log_file, "pos": stream.log_pos}
            if _order(here) > stop:  # this event starts at or after end
                break
            ended = False
            if isinstance(event, MariadbGtidEvent):
                in_transaction = not event.flags & 1  # FL_STANDALONE: a DDL statement, no COMMIT follows
            elif isinstance(event, XidEvent):
                ended = True
            elif isinstance(event, QueryEvent):
                query = event.query.strip().rstrip(";").strip()
                word = query.split(None, 1)[0].upper() if query else ""
                if word == "BEGIN":
                    in_transaction = True
                ended = word in ("COMMIT", "ROLLBACK") or not in_transaction
                truncated = _TRUNCATE.match(query)
                if truncated:
                    parts = _unquote(truncated[1])
                    schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
                    name = (parts[0], parts[1]) if len(parts) == 2 else (schema, parts[0])
                    if name in tables:
                        page.table(name).truncated = True
            else:
                name = (event.schema, event.table)
                if name in tables:
                    columns = tables[name]
                    for row in event.rows:
                        for values in (row.get("before_values"), row.get("after_values"), row.get("values")):
                            if values is None:
                                continue
                            if any(column not in values for column in columns):
                                raise SourceDatabaseError(
                                    f"Source {source_name!r}: the binlog rows of {name[0]}.{name[1]} lack column "
                                    f"names (got {sorted(values)[:5]}): run `SET GLOBAL binlog_row_metadata = "
                                    "'FULL';` and add `binlog_row_metadata = FULL` to my.cnf; rows already "
                                    f"written stay nameless: then `oso-sources drop-cdc {source_name}` and a sync.")
                            page.table(name).keys.add(tuple(key_text(values[column]) for column in columns))
                        page.changes += 1
            if ended:
                in_transaction = False
                if max_changes is not None and page.changes >= max_changes:
                    page.end = here
                    yield page
                    page = ChangePage(end=dict(end))
            if _order(here) == stop:
                break
    except SourceDatabaseError:
        raise
    except Exception as error:  # pymysql errors can quote the connection settings
        message = f"Source {source_name!r}: reading the binlog failed: {error}"
        raise SourceDatabaseError(scrub(message, secrets)) from None
    finally:
        keys_only.__exit__(None, None, None)
        stream.close()
    if page.changes or page.tables:
        yield page
