"""Binlog row images decoded for their key columns only.

``mysql-replication`` decodes every column of every row image in Python (decimals, datetimes, strings), and a
sync keeps only the key: on 100,000 updates that decoding was most of the catch-up. Inside
:func:`key_columns_only`, the rows of the followed tables are read with the key columns decoded by the
library's own reader and every other column skipped by its width (fixed, or its length prefix). A column of a
type not listed here, a row without column names, or MySQL's partial JSON update falls back to the library's
full decoding, so nothing is guessed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pymysqlreplication.bitmap import BitCount, BitGet
from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.row_event import RowsEvent

from oso_dagster.run.cdc.changes import TableName

_FIXED = {
    FIELD_TYPE.TINY: 1, FIELD_TYPE.SHORT: 2, FIELD_TYPE.INT24: 3, FIELD_TYPE.LONG: 4, FIELD_TYPE.LONGLONG: 8,
    FIELD_TYPE.FLOAT: 4, FIELD_TYPE.DOUBLE: 8, FIELD_TYPE.YEAR: 1, FIELD_TYPE.DATE: 3, FIELD_TYPE.TIME: 3,
    FIELD_TYPE.TIMESTAMP: 4, FIELD_TYPE.DATETIME: 8,
}
_WITH_FRACTION = {FIELD_TYPE.DATETIME2: 5, FIELD_TYPE.TIME2: 3, FIELD_TYPE.TIMESTAMP2: 4}
_PREFIXED = {FIELD_TYPE.BLOB, FIELD_TYPE.GEOMETRY, FIELD_TYPE.JSON}
_DECIMAL_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes of a group of 0-8 leftover digits
_original = RowsEvent._read_column_data
_keys: dict[TableName, frozenset[str]] = {}
_lock = threading.Lock()


def _width(column: Any, packet: Any) -> int | None:
    """Bytes the value takes after its length prefix (read here), or None for a type not known here."""
    kind = column.type
    if kind in _FIXED:
        return _FIXED[kind]
    if kind in _WITH_FRACTION:
        return _WITH_FRACTION[kind] + (column.fsp + 1) // 2
    if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
        return int(packet.read_uint_by_size(2 if column.max_length > 255 else 1))
    if kind in _PREFIXED:
        return int(packet.read_uint_by_size(column.length_size))
    if kind == FIELD_TYPE.NEWDECIMAL:
        integral, fraction = column.precision - column.decimals, column.decimals
        return (integral // 9) * 4 + _DECIMAL_BYTES[integral % 9] + (fraction // 9) * 4 + _DECIMAL_BYTES[fraction % 9]
    if kind in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        return int(column.size)
    if kind == FIELD_TYPE.BIT:
        return int(column.bytes)
    return None


def _known(column: Any) -> bool:
    kind = column.type
    return bool(column.name) and (kind in _FIXED or kind in _WITH_FRACTION or kind in _PREFIXED or kind in (
        FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.ENUM, FIELD_TYPE.SET, FIELD_TYPE.BIT))


def _read_keys(event: Any, cols_bitmap: Any, row_image_type: Any = None) -> dict[str, Any]:
    keys = _keys.get((event.schema, event.table))
    columns = event.columns
    if keys is None or event.event_type == BINLOG.PARTIAL_UPDATE_ROWS_EVENT or not all(
            column.name in keys or _known(column) for column in columns):
        return dict(_original(event, cols_bitmap, row_image_type))
    read_value = event._RowsEvent__read_values_name  # the library's reader of one value
    null_bitmap = event.packet.read((BitCount(cols_bitmap) + 7) / 8)
    values: dict[str, Any] = {}
    present = 0
    for index, column in enumerate(columns):
        if BitGet(cols_bitmap, index) == 0:  # not in this image (binlog_row_image=MINIMAL)
            continue
        if column.name in keys:
            unsigned = getattr(column, "unsigned", False)
            values[column.name] = read_value(column, null_bitmap, present, False, cols_bitmap, unsigned, index)
        elif not event._is_null(null_bitmap, present):
            width = _width(column, event.packet)
            if width:
                event.packet.read(width)
        present += 1
    return values


@contextmanager
def key_columns_only(tables: Mapping[TableName, Sequence[str]]) -> Iterator[None]:
    """Rows of ``tables`` decode only their key columns while inside (one reader at a time per process)."""
    with _lock:
        _keys.clear()
        _keys.update({name: frozenset(columns) for name, columns in tables.items()})
        RowsEvent._read_column_data = _read_keys
        try:
            yield
        finally:
            RowsEvent._read_column_data = _original
            _keys.clear()
