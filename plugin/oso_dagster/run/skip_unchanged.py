"""Skip merged incremental tables where nothing happened since the last sync, for about one query each.

Most tables of a large source do not change between two hourly syncs, yet each costs reflection, a dlt
extract, normalize and load, and a merge in the warehouse. Before any of that, each candidate table gets one
cheap query (its cursor's max, how many rows hold that max, its row count when deletes are reconciled) and
its columns are read in one batched reflection. The result, its *fingerprint*, is compared with the one
stored after the table's last successful load; a table whose fingerprint and dlt cursor are both unchanged
is reported unchanged and costs nothing more.

Why this keeps every guarantee of a full read:

- **cursor continuity, rows at the same cursor value**: a new row at the stored cursor value raises the
  count at the max, so the table is read (dlt re-reads ``cursor >= last_value``, as always).
- **the fingerprint is taken before the load** and stored only if the load ended at the same cursor max:
  a row that arrived during the load makes the next sync read the table again, never skip it.
- **reconcile_deletes**: a skip needs the source's row count to equal the count stored right after the
  previous reconciliation; a run that did not reconcile stores no count, so the next one does.
- **kill safety**: the fingerprints are written (atomically) only after the step's loads succeeded; a
  stored fingerprint is used only while dlt's cursor for the table is still the one it was stored with,
  and nothing is skipped while dlt holds load packages not yet loaded. ``oso-sources reset-table`` drops
  the cursor, so the next sync reads the table.

Not seen by the fingerprint (nor by dlt's cursor): an update that leaves the cursor column unchanged, and
for ``reconcile_deletes`` a delete matched by an insert of an older cursor value (the count is the same).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oso_dagster.factories.config import TableConfig

STATE_FILE = "oso_unchanged.json"


@dataclass(frozen=True)
class Fingerprint:
    """What one cheap look at a source table saw; equal fingerprints mean nothing new to read."""

    cursor_max: str | None
    at_max: int
    columns: str
    rows: int | None = None  # only for tables whose deletes are reconciled


def candidates(configs: Sequence[TableConfig]) -> list[TableConfig]:
    """Merged incremental tables with dlt's default ``max`` cursor: the ones a fingerprint can speak for."""
    return [
        c for c in configs
        if c.incremental is not None and c.write_disposition == "merge" and c.cursor_column
        and getattr(c.incremental, "last_value_func", max) is max
    ]


def take_fingerprints(
    engine: Any, configs: Sequence[TableConfig], workers: int = 1
) -> tuple[dict[str, Fingerprint], dict[str, Any]]:
    """Fingerprint each table (``workers`` queries at a time); also return each cursor max as read.

    A table that cannot be looked at (missing, no privilege) is left out: the normal path reports it.
    """
    columns, types = _column_hashes(engine, configs)
    maxima: dict[str, Any] = {}
    found: dict[str, Fingerprint] = {}

    def look(config: TableConfig) -> None:
        if config.landing_name not in columns:
            return
        try:
            with engine.connect() as conn:
                query = _fingerprint_query(config, types[config.landing_name].get(config.cursor_column or ""))
                maximum, at_max, rows = conn.execute(query).one()
        except Exception:
            return
        maxima[config.landing_name] = maximum
        found[config.landing_name] = Fingerprint(
            cursor_max=None if maximum is None else _text(maximum), at_max=int(at_max or 0),
            columns=columns[config.landing_name], rows=None if rows is None else int(rows),
        )

    if workers > 1 and len(configs) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(configs)), thread_name_prefix="oso-fingerprint") as pool:
            list(pool.map(look, configs))
    else:
        for config in configs:
            look(config)
    return found, maxima


def _fingerprint_query(config: TableConfig, cursor_type: Any = None) -> Any:
    """``max(cursor)``, the rows at that max, and ``count(*)`` when deletes are reconciled: one round trip.

    The cursor column carries its reflected type, so the max comes back as dlt's cursor does (SQLite hands
    out a ``DATETIME`` as text otherwise).
    """
    import sqlalchemy as sa

    cursor = config.cursor_column or ""
    table = sa.table(config.table, sa.column(cursor, cursor_type), schema=config.schema)
    maximum = sa.select(sa.func.max(table.c[cursor])).scalar_subquery()
    at_max = sa.select(sa.func.count()).select_from(table).where(table.c[cursor] == maximum).scalar_subquery()
    rows = (
        sa.select(sa.func.count()).select_from(table).scalar_subquery() if config.reconcile_deletes
        else sa.null()
    )
    return sa.select(maximum.label("m"), at_max.label("n"), rows.label("r"))


def _column_hashes(engine: Any, configs: Sequence[TableConfig]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """A hash of each table's column names, types and nullability; one batched reflection per schema
    (a single catalog query on PostgreSQL), so a changed column makes the table be read."""
    import sqlalchemy as sa

    by_schema: dict[str | None, list[TableConfig]] = {}
    for config in configs:
        by_schema.setdefault(config.schema, []).append(config)
    hashes: dict[str, str] = {}
    types: dict[str, dict[str, Any]] = {}
    inspector = sa.inspect(engine)
    for schema, group in by_schema.items():
        try:
            reflected = inspector.get_multi_columns(schema=schema, filter_names=[c.table for c in group])
        except Exception:
            continue
        by_table = {table: columns for (_, table), columns in reflected.items()}
        for config in group:
            columns = by_table.get(config.table)
            if not columns:
                continue
            described = [(c["name"], str(c["type"]), bool(c.get("nullable", True))) for c in columns]
            hashes[config.landing_name] = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]
            types[config.landing_name] = {c["name"]: c["type"] for c in columns}
    return hashes, types


def same_value(a: Any, b: Any) -> bool:
    """Whether the cursor max as read equals dlt's stored cursor (naive and aware datetimes compared in UTC)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        a = a if a.tzinfo else a.replace(tzinfo=UTC)
        b = b if b.tzinfo else b.replace(tzinfo=UTC)
    try:
        return bool(a == b)
    except TypeError:
        return False


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class SkipState:
    """The fingerprints stored after each table's last successful load, in the dlt pipeline's own folder.

    That folder goes with dlt's local state: a fresh machine (state restored from the warehouse) or a
    dropped pipeline has none, so every table is read once, as before.
    """

    def __init__(self, working_dir: str | os.PathLike[str]) -> None:
        self.path = Path(working_dir) / STATE_FILE
        try:
            self.entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def unchanged(self, config: TableConfig, now: Fingerprint, cursor: Any) -> bool:
        """True when ``now`` equals the stored fingerprint and dlt's cursor is the one it was stored with."""
        stored = self.entries.get(config.landing_name)
        if not stored or cursor is None or stored.get("cursor") != _text(cursor):
            return False
        if config.reconcile_deletes and not stored.get("reconciled"):
            return False
        return stored.get("fingerprint") == asdict(now)

    def record(self, config: TableConfig, before: Fingerprint | None, maximum: Any, cursor: Any,
               reconciled: bool) -> None:
        """Keep ``before`` (taken before the load) if the load ended at its cursor max; else forget the table."""
        if before is None or cursor is None or maximum is None or not same_value(maximum, cursor):
            self.entries.pop(config.landing_name, None)
            return
        self.entries[config.landing_name] = {
            "cursor": _text(cursor), "fingerprint": asdict(before), "reconciled": reconciled,
        }

    def save(self) -> None:
        """Write atomically: a killed run leaves the previous file, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.entries, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.path)


def split_unchanged(
    configs: Sequence[TableConfig], fingerprints: Mapping[str, Fingerprint], state: SkipState,
    cursor_of: Callable[[TableConfig], Any], pending: bool,
) -> tuple[list[TableConfig], list[TableConfig]]:
    """``(to_load, unchanged)``; with dlt load packages pending, every table is loaded."""
    if pending:
        return list(configs), []
    to_load, unchanged = [], []
    for config in configs:
        now = fingerprints.get(config.landing_name)
        if now is not None and state.unchanged(config, now, cursor_of(config)):
            unchanged.append(config)
        else:
            to_load.append(config)
    return to_load, unchanged
