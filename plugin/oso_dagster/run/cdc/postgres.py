"""PostgreSQL's change log for a source: a publication and a logical replication slot, read with SQL.

Both are named ``oso_<source>``. Changes are read with ``pg_logical_slot_peek_binary_changes`` (the
``pgoutput`` plugin built into PostgreSQL, no server extension), which starts at the slot's confirmed
position and does not move it; once a page is in the warehouse, ``pg_replication_slot_advance`` confirms it.
A sync therefore needs no replication-protocol connection, only a role with the REPLICATION attribute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from oso_dagster.errors import SourceDatabaseError
from oso_dagster.naming import quote_identifier
from oso_dagster.run.cdc.changes import ChangePage, TableName
from oso_dagster.run.cdc.pgoutput import Commit, Decoder, RowChange, Truncate


def slot_name(source_name: str) -> str:
    return f"oso_{source_name}"


publication_name = slot_name


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _lost(source_name: str, what: str) -> SourceDatabaseError:
    return SourceDatabaseError(
        f"Source {source_name!r}: {what}, so the changes since the last sync can no longer be read and the "
        "warehouse would miss them. Nothing was loaded. To start again from a new snapshot of every table, run "
        f"`oso-sources drop-cdc {source_name}` and then sync the source."
    )


def prepare(
    engine: Engine, source_name: str, tables: Sequence[TableName], resumed: bool
) -> tuple[dict[str, Any], set[TableName]]:
    """Make the publication hold exactly ``tables`` and the slot exist; return the slot's confirmed position
    and the tables that were not in the publication (their changes were not recorded: they need a snapshot).

    ``resumed``: the warehouse holds a position of this source, so slot and publication must be there already;
    a missing one fails (never a silent new start that skips what happened in between).
    """
    slot, publication = slot_name(source_name), publication_name(source_name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        _check_wal_level(conn, source_name)
        have: set[TableName] = {(str(row[0]), str(row[1])) for row in conn.execute(sa.text(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = :p"), {"p": publication})}
        exists = conn.execute(sa.text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": publication}).first()
        if resumed and not exists:
            raise _lost(source_name, f"the publication {publication!r} no longer exists on the server (dropped); "
                        "PostgreSQL sends no changes for a missing publication")
        listed = ", ".join(sorted(f"{quote_identifier(s)}.{quote_identifier(t)}" for s, t in tables))
        if not exists:
            conn.execute(sa.text(f"CREATE PUBLICATION {quote_identifier(publication)} FOR TABLE {listed}"))
        elif have != set(tables):
            conn.execute(sa.text(f"ALTER PUBLICATION {quote_identifier(publication)} SET TABLE {listed}"))
        added = set(tables) - have
        row = conn.execute(sa.text(
            "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = :s"),
            {"s": slot}).first()
        if row is None:
            if resumed:
                raise _lost(source_name, f"the replication slot {slot!r} no longer exists on the server")
            created = conn.execute(sa.text(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(:s, 'pgoutput')"), {"s": slot}).scalar()
            return {"lsn": str(created)}, added
        if row[1] == "lost":
            raise _lost(source_name, f"the replication slot {slot!r} was invalidated (the WAL it needed was removed, "
                        "max_slot_wal_keep_size)")
        return {"lsn": str(row[0])}, added


def _check_wal_level(conn: Connection, source_name: str) -> None:
    level = conn.execute(sa.text("SHOW wal_level")).scalar()
    if level != "logical":
        raise SourceDatabaseError(
            f"Source {source_name!r} has cdc=True, but the PostgreSQL server runs with wal_level={level}. "
            "Set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart "
            "the server; docs/cdc.md lists what else CDC needs."
        )


def end_position(engine: Engine) -> dict[str, Any]:
    """Where the log ends now: a sync reads up to here and stops, however busy the database is.

    The *flushed* end: logical decoding reads only flushed WAL, so every commit before it is seen, and the
    slot can safely be advanced to it once they are applied (:func:`acknowledge`), even when none of them
    touched a CDC table (else a quiet source on a busy server would hold WAL back for ever).
    """
    with engine.connect() as conn:
        return {"lsn": str(conn.execute(sa.text("SELECT pg_current_wal_flush_lsn()::text")).scalar())}


def pages(
    engine: Engine, source_name: str, end: Mapping[str, Any], keys: Mapping[TableName, Sequence[str]],
    max_changes: int | None = 50_000,
) -> Iterator[ChangePage]:
    """Pages of changes from the slot's confirmed position up to ``end``; the caller must
    :func:`acknowledge` each page before asking for the next (the next read starts where the slot stands).
    ``max_changes=None``: everything up to ``end`` as one page (nothing is acknowledged in between)."""
    slot, publication = slot_name(source_name), publication_name(source_name)
    query = sa.text(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(:slot, CAST(:upto AS pg_lsn), :n, "
        "'proto_version', '1', 'publication_names', :pub)"
    )
    while True:
        page: ChangePage | None = None
        decoder = Decoder(keys)
        with engine.connect().execution_options(
                isolation_level="READ COMMITTED", stream_results=True, yield_per=10_000) as conn:
            result = conn.execute(query, {"slot": slot, "upto": end["lsn"], "n": max_changes, "pub": publication})
            for (data,) in result:
                message = decoder.decode(bytes(cast(bytes, data)))
                if page is None:
                    page = ChangePage(end={})
                if isinstance(message, RowChange):
                    name = decoder.relations[message.relation].name
                    page.table(name).keys.update(message.keys)
                    page.changes += 1
                elif isinstance(message, Truncate):
                    for relation in message.relations:
                        if relation in decoder.relations:
                            page.table(decoder.relations[relation].name).truncated = True
                elif isinstance(message, Commit):
                    page.end = {"lsn": lsn_text(message.end_lsn)}
            conn.rollback()
        if page is None or not page.end:
            return
        yield page
        if max_changes is None:
            return


def acknowledge(engine: Engine, source_name: str, position: Mapping[str, Any]) -> None:
    """Tell the server the changes up to ``position`` are in the warehouse: it may now recycle their WAL.
    A position behind the slot's (a page's commit ended past the sync's end) leaves the slot where it is."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(
            "SELECT pg_replication_slot_advance(slot_name, CAST(:lsn AS pg_lsn)) FROM pg_replication_slots "
            "WHERE slot_name = :s AND confirmed_flush_lsn < CAST(:lsn AS pg_lsn)"),
            {"s": slot_name(source_name), "lsn": position["lsn"]})


def retained_wal_bytes(engine: Engine, source_name: str) -> int | None:
    """WAL the server keeps for this source's slot (from its restart point to the log's end); None: no slot."""
    with engine.connect() as conn:
        value = conn.execute(sa.text(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
            "WHERE slot_name = :s"), {"s": slot_name(source_name)}).scalar()
    return None if value is None else int(value)


def drop(engine: Engine, source_name: str) -> list[str]:
    """Drop the slot and the publication (what ``oso-sources drop-cdc`` does); return what was dropped."""
    dropped = []
    slot, publication = slot_name(source_name), publication_name(source_name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(sa.text("SELECT 1 FROM pg_replication_slots WHERE slot_name = :s"), {"s": slot}).first():
            conn.execute(sa.text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
            dropped.append(f"replication slot {slot}")
        if conn.execute(sa.text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": publication}).first():
            conn.execute(sa.text(f"DROP PUBLICATION {quote_identifier(publication)}"))
            dropped.append(f"publication {publication}")
    return dropped


def prerequisites(engine: Engine, source_name: str) -> list[str]:
    """What the server or the role lacks for CDC, each with the fix (``oso-sources check``)."""
    problems = []
    with engine.connect() as conn:
        level = conn.execute(sa.text("SHOW wal_level")).scalar()
        if level != "logical":
            problems.append(f"wal_level is {level}: set wal_level = logical in postgresql.conf and restart.")
        role = conn.execute(sa.text(
            "SELECT rolname, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")).one()
        if not role[1]:
            problems.append(f"role {role[0]} lacks the REPLICATION attribute: ALTER ROLE {role[0]} REPLICATION;")
        free = conn.execute(sa.text(
            "SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots")).scalar()
        has_slot = conn.execute(sa.text("SELECT 1 FROM pg_replication_slots WHERE slot_name = :s"),
                                {"s": slot_name(source_name)}).first()
        if not has_slot and (free or 0) < 1:
            problems.append("every replication slot is taken: raise max_replication_slots and restart.")
    return problems
