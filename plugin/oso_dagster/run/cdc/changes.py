"""What a change log tells a sync: which keys of which tables changed, up to which position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TableName = tuple[str, str]  # (schema or database, table), as the source names them
Key = tuple[str | None, ...]  # the primary key's values in the order of the key columns, as text


@dataclass
class TableChanges:
    """The keys of one table that an insert, update or delete touched, and whether it was truncated."""

    keys: set[Key] = field(default_factory=set)
    truncated: bool = False


@dataclass
class ChangePage:
    """Changes of whole transactions, read from the log in order; ``end`` is where the next page starts."""

    end: dict[str, Any]  # a JSON-able position: {"lsn": "0/16B3748"} or {"file": "binlog.000003", "pos": 1234}
    tables: dict[TableName, TableChanges] = field(default_factory=dict)
    changes: int = 0  # row changes read (inserts, updates, deletes), for the log and the metadata

    def table(self, name: TableName) -> TableChanges:
        return self.tables.setdefault(name, TableChanges())


def key_text(value: Any) -> str | None:
    """A key value as text: how the refetch query binds it and the DuckDB delete casts it."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat(sep=" ") if hasattr(value, "hour") and hasattr(value, "date") else value.isoformat()
    return str(value)
