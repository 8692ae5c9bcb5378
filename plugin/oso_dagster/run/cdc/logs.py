"""The two change logs behind one interface (:class:`oso_dagster.run.cdc.sync.ChangeLog`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from oso_dagster.factories.config import SqlSource
from oso_dagster.run.cdc import mysql, postgres
from oso_dagster.run.cdc.changes import ChangePage, TableName
from oso_dagster.run.cdc.state import CdcState


class PostgresLog:
    """Logical replication: the slot remembers the position; the warehouse copy is for people and checks."""

    kind = "postgres logical replication"

    def __init__(self, engine: Engine, source: SqlSource) -> None:
        self.engine, self.source = engine, source

    def start(self, tables: Sequence[TableName], stored: dict[str, Any] | None
              ) -> tuple[dict[str, Any], set[TableName]]:
        return postgres.prepare(self.engine, self.source.name, tables, resumed=stored is not None)

    def end(self) -> dict[str, Any]:
        return postgres.end_position(self.engine)

    def pages(self, start: dict[str, Any], end: dict[str, Any], keys: Mapping[TableName, Sequence[str]],
              max_changes: int | None) -> Iterator[ChangePage]:
        return postgres.pages(self.engine, self.source.name, end, keys, max_changes)

    def acknowledge(self, position: dict[str, Any]) -> None:
        postgres.acknowledge(self.engine, self.source.name, position)

    def retention(self, stored: CdcState) -> tuple[bool, str, dict[str, Any]]:
        """Fails when the WAL held for the slot (measured before this sync read it) passed the threshold."""
        held = postgres.retained_wal_bytes(self.engine, self.source.name)
        limit_mb = self.source.options.cdc_max_retained_wal_mb
        held_mb = (held or 0) / 1024 / 1024
        slot = postgres.slot_name(self.source.name)
        metadata = {"retained_wal_mb": round(held_mb, 3), "threshold_mb": limit_mb, "slot": slot}
        if held_mb > limit_mb:
            return False, (
                f"Replication slot {slot} held {held_mb:,.1f} MB of WAL before this sync (threshold {limit_mb:,.0f} "
                "MB): the server keeps WAL until a sync reads it. Sync more often, raise cdc_max_retained_wal_mb, "
                f"or if the source is gone run `oso-sources drop-cdc {self.source.name}`."
            ), metadata
        return True, f"{held_mb:,.1f} MB of WAL held for {slot} before this sync", metadata


class MysqlLog:
    """The binlog: the position lives only in the warehouse, written with the rows it covers."""

    kind = "mysql binlog"

    def __init__(self, engine: Engine, url: str, source: SqlSource) -> None:
        self.engine, self.url, self.source = engine, url, source

    def start(self, tables: Sequence[TableName], stored: dict[str, Any] | None
              ) -> tuple[dict[str, Any], set[TableName]]:
        """No server-side filter: a table is followed from when it was first snapshotted (the sync's state)."""
        mysql.check_binlog(self.engine, self.source.name)
        return stored or mysql.current_position(self.engine), set()

    def end(self) -> dict[str, Any]:
        return mysql.current_position(self.engine)

    def pages(self, start: dict[str, Any], end: dict[str, Any], keys: Mapping[TableName, Sequence[str]],
              max_changes: int | None) -> Iterator[ChangePage]:
        return mysql.pages(self.url, self.source.name, start, end, keys, max_changes)

    def acknowledge(self, position: dict[str, Any]) -> None:
        """Nothing to tell the server: the warehouse transaction stored the position."""

    def retention(self, stored: CdcState) -> tuple[bool, str, dict[str, Any]]:
        """Fails when the last sync is more than half the binlog's expiry ago: the next gap may lose history."""
        expiry = mysql.expire_seconds(self.engine)
        applied = stored.applied_at
        age = (datetime.now(UTC) - applied).total_seconds() if applied is not None else 0.0
        metadata = {"seconds_since_last_sync": round(age, 1), "binlog_expire_seconds": expiry or 0}
        if expiry and age > expiry / 2:
            return False, (
                f"The last sync of {self.source.name} was {age / 3600:,.1f} h ago and the server keeps binlogs "
                f"{expiry / 3600:,.1f} h: sync more often than every {expiry / 7200:,.1f} h, or raise "
                "binlog_expire_logs_seconds, before the history the next sync needs is purged."
            ), metadata
        return True, f"last sync {age / 3600:,.2f} h ago; binlogs kept {(expiry or 0) / 3600:,.1f} h", metadata
