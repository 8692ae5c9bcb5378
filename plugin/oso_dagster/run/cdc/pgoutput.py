"""The few messages of PostgreSQL's ``pgoutput`` protocol (version 1) a sync needs, decoded.

Written here because no maintained library decodes pgoutput from bytes (psycopg2 only transports it). Only
what says *which rows changed* is read: Relation (names and key columns), Insert/Update/Delete (the key
values, as text), Truncate, and Commit (where a transaction ends). Column values other than the key are
skipped: the rows are re-read from the table, so TOAST placeholders and type decoding never matter here.
Message layout: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oso_dagster.run.cdc.changes import Key, TableName


@dataclass(frozen=True)
class Relation:
    name: TableName
    key_positions: tuple[int, ...]  # where the warehouse key's columns are among the row's columns


@dataclass(frozen=True)
class RowChange:
    relation: int
    keys: tuple[Key, ...]  # the old key (an update that changed the key, a delete) and/or the new one


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


@dataclass(frozen=True)
class Commit:
    end_lsn: int  # the LSN just past the transaction: where the next read starts


Message = Relation | RowChange | Truncate | Commit | None


class Decoder:
    """Decodes one message at a time; remembers relations (sent once per decoding session, before use).

    ``keys`` names each table's key columns: found by name in the Relation message, so a key is read the same
    whatever the table's replica identity (primary key, or FULL).
    """

    def __init__(self, keys: Mapping[TableName, Sequence[str]]) -> None:
        self.keys = keys
        self.relations: dict[int, Relation] = {}

    def decode(self, data: bytes) -> Message:
        kind = data[:1]
        if kind == b"R":
            return self._relation(data)
        if kind in (b"I", b"U", b"D"):
            return self._row(kind, data)
        if kind == b"T":
            (count,) = struct.unpack_from("!i", data, 1)
            return Truncate(struct.unpack_from(f"!{count}i", data, 6))
        if kind == b"C":
            (end,) = struct.unpack_from("!q", data, 10)
            return Commit(end)
        return None  # Begin, Origin, Type, Message: nothing to act on

    def _relation(self, data: bytes) -> Relation:
        (oid,) = struct.unpack_from("!i", data, 1)
        offset = 5
        schema, offset = _string(data, offset)
        table, offset = _string(data, offset)
        offset += 1  # replica identity setting
        (count,) = struct.unpack_from("!h", data, offset)
        offset += 2
        names = []
        for _ in range(count):
            name, offset = _string(data, offset + 1)  # after the flags byte
            offset += 8  # type oid, type modifier
            names.append(name)
        wanted = self.keys.get((schema, table), ())
        relation = Relation((schema, table), tuple(names.index(c) for c in wanted if c in names))
        self.relations[oid] = relation
        return relation

    def _row(self, kind: bytes, data: bytes) -> RowChange | None:
        (oid,) = struct.unpack_from("!i", data, 1)
        positions = self.relations[oid].key_positions
        if not positions:
            return None  # a table this sync does not follow
        offset = 5
        keys: list[Key] = []
        while offset < len(data):
            marker = data[offset:offset + 1]  # K: old key, O: old row, N: new row
            values, offset = _tuple(data, offset + 1)
            keys.append(tuple(values[i] for i in positions))
            if marker == b"N":
                break
        if kind == b"U" and len(keys) == 2 and keys[0] == keys[1]:
            keys.pop(0)
        return RowChange(oid, tuple(keys))


def _string(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\0", offset)
    return data[offset:end].decode(), end + 1


def _tuple(data: bytes, offset: int) -> tuple[list[str | None], int]:
    """TupleData: each column null (n), unchanged TOAST (u: never a key column) or text (t)."""
    (count,) = struct.unpack_from("!h", data, offset)
    offset += 2
    values: list[str | None] = []
    for _ in range(count):
        kind = data[offset:offset + 1]
        offset += 1
        if kind in (b"t", b"b"):
            (length,) = struct.unpack_from("!i", data, offset)
            offset += 4
            values.append(data[offset:offset + length].decode())
            offset += length
        else:
            values.append(None)
    return values, offset
