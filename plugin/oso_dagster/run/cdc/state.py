"""Where a CDC source stands, kept in the warehouse beside its tables (``<dataset>._oso_cdc_state``).

Written in the same DuckDB transaction as the rows it describes, so the two never disagree after a crash.
One row per source holds the log position up to which changes are applied (scope ``''``); one row per table
says its snapshot landed (a table without one is snapshotted by the next sync).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt

STATE_TABLE = "_oso_cdc_state"
_SOURCE = ""


@dataclass
class CdcState:
    position: dict[str, Any] | None = None
    applied_at: datetime | None = None  # when changes were last applied (or the position first taken)
    snapshotted: set[str] = field(default_factory=set)  # landing tables whose snapshot is in


def read(pipeline: dlt.Pipeline) -> CdcState:
    with pipeline.sql_client() as client:
        if not client.has_dataset() or not _exists(client):
            return CdcState()
        rows = client.execute_sql(f"SELECT scope, position, updated_at FROM {_table(client)}") or []
    state = CdcState()
    for scope, position, updated_at in rows:
        if scope == _SOURCE:
            state.position, state.applied_at = json.loads(position), updated_at
        else:
            state.snapshotted.add(scope)
    return state


def ensure(client: Any) -> None:
    """SQL both DuckDB and BigQuery run (``TIMESTAMP`` is an instant in BigQuery, ``TIMESTAMPTZ`` in DuckDB)."""
    instant = "TIMESTAMP" if _is_bigquery(client) else "TIMESTAMPTZ"
    client.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {_table(client)} (scope STRING, position STRING, updated_at {instant})"
    )


def save_position(client: Any, position: dict[str, Any]) -> None:
    """Inside the caller's transaction, with the rows it applied."""
    _upsert(client, _SOURCE, position)


def mark_snapshotted(client: Any, landing: str, position: dict[str, Any]) -> None:
    _upsert(client, landing, position)


def forget_in(client: Any, landing: str) -> None:
    """Inside the caller's transaction: the table is copied again by the next sync that selects it."""
    client.execute_sql(f"DELETE FROM {_table(client)} WHERE scope = %s", landing)


def forget(pipeline: dlt.Pipeline, landing: str | None = None) -> bool:
    """Forget one table's snapshot (``reset-table``: the next sync copies it again) or, with ``None``, the
    whole source's CDC state (``drop-cdc``). True if there was something to forget."""
    with pipeline.sql_client() as client:
        if not client.has_dataset() or not _exists(client):
            return False
        if landing is None:
            client.execute_sql(f"DROP TABLE {_table(client)}")
            return True
        found = client.execute_sql(f"SELECT 1 FROM {_table(client)} WHERE scope = %s", landing)
        client.execute_sql(f"DELETE FROM {_table(client)} WHERE scope = %s", landing)
        return bool(found)


def _upsert(client: Any, scope: str, position: dict[str, Any]) -> None:
    client.execute_sql(f"DELETE FROM {_table(client)} WHERE scope = %s", scope)
    client.execute_sql(
        f"INSERT INTO {_table(client)} VALUES (%s, %s, CURRENT_TIMESTAMP)", scope, json.dumps(position)
    )


def _is_bigquery(client: Any) -> bool:
    return "bigquery" in type(client).__module__


def _table(client: Any) -> str:
    return str(client.make_qualified_table_name(STATE_TABLE))


def _exists(client: Any) -> bool:
    """Asked outside any transaction: a failed query is the answer (each warehouse's catalog differs)."""
    try:
        client.execute_sql(f"SELECT 1 FROM {_table(client)} LIMIT 1")
    except Exception:
        return False
    return True
