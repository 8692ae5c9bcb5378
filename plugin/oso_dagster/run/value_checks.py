"""Values the source hands out that its column type does not promise: read them exactly, or fail naming them.

SQLite keeps any value in any column (a ``1.5`` in an ``INTEGER`` column, an epoch number in a ``DATETIME``
one, digits past the declared scale of a ``DECIMAL(10,2)``), and SQLAlchemy's readers would truncate, round
or stumble over them. MySQL hands out "zero dates" (``0000-00-00``) as text. Each such column is read
through a checked reader that returns the exact value, or raises :class:`SourceValueError` naming the table,
the column and the value. PostgreSQL enforces its types, but a ``timestamp`` may hold ``infinity`` or a date
outside the years 1-9999, which no warehouse timestamp (nor Arrow) holds: :func:`diagnose_read_error` finds
such a value after a failed read, so the error names it instead of a decoder's message.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Engine

from oso_dagster.errors import SourceValueError

Reader = Callable[[Any], Any]
CHECKED_DIALECTS = ("sqlite", "mysql", "mariadb")

# MySQL's zero dates and dates with a zero month or day (allowed unless sql_mode has NO_ZERO_IN_DATE)
_MYSQL_ZERO_DATE = re.compile(r"^\d{4}-(?:00-\d{2}|\d{2}-00)|^0000-")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_EXACT_FLOAT_INT = 2**53


def checked_expression(
    column: sa.ColumnElement[Any], dialect: str, table: str, as_text: bool
) -> sa.ColumnElement[Any] | None:
    """``column`` with a checked reader attached (no change to the SQL), or ``None`` where none is needed.

    ``as_text``: the column lands as text (an untyped or unbounded SQLite column), read as the exact text
    of each value instead of SQLite's ``CAST(... AS TEXT)``, which rounds reals to 15 digits.
    """
    found = _reader(column.type, dialect, as_text)
    if found is None:
        return None
    reader, passthrough = found
    return sa.type_coerce(column, _Checked(_with_context(reader, table, column.name, column.type), passthrough))


def json_text(column: sa.ColumnElement[Any], table: str) -> sa.ColumnElement[Any]:
    """A SQLite JSON column read as its text, checked to be one JSON document (SQLite does not enforce it)."""
    reader = _with_context(_sqlite_json, table, column.name, column.type)
    return sa.type_coerce(column, _Checked(reader, ()))


def _sqlite_json(value: Any) -> str:
    text = _text(value)
    try:
        json.loads(text, parse_constant=_not_json)
    except ValueError:
        raise _Unfit("which is not a JSON document.") from None
    return text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


class _Checked(sa.types.UserDefinedType[Any]):
    """Hands every raw driver value to ``read`` (in place of the SQLAlchemy type's own processing); values
    whose Python type is in ``passthrough`` are returned as they are, without a call (the common case)."""

    cache_ok = False

    def __init__(self, read: Reader, passthrough: tuple[type, ...]) -> None:
        self.read = read  # named as the arguments: SQLAlchemy copies types by their constructor's names
        self.passthrough = passthrough

    def get_col_spec(self, **_: Any) -> str:  # never rendered: type_coerce adds no CAST
        return "NULL"

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Reader:
        read, passthrough = self.read, self.passthrough

        def process(value: Any) -> Any:
            if value is None or type(value) in passthrough:
                return value
            return read(value)

        return process


class _Unfit(Exception):
    """A value the reader cannot return exactly; the message says why (context is added by the caller)."""


def _with_context(reader: Reader, table: str, column: str, sql_type: sqltypes.TypeEngine) -> Reader:
    declared = _type_name(sql_type)

    def read(value: Any) -> Any:
        try:
            return reader(value)
        except _Unfit as exc:
            raise SourceValueError(
                f"Table {table!r}, column {column!r} (declared {declared}) holds {_show(value)} "
                f"({_kind(value)}), {exc} "
                "Nothing was loaded for this table. Fix the value in the source, or land the column as text: "
                f"add \"columns\": {{\"{column}\": \"text\"}} to the table's entry in sql_assets."
            ) from None

    return read


# A reader, and the Python types of the values it would return unchanged (passed without a call).
_Found = tuple[Reader, tuple[type, ...]]


def _reader(sql_type: sqltypes.TypeEngine, dialect: str, as_text: bool) -> _Found | None:
    if dialect == "sqlite":
        return (_text, (str,)) if as_text else _sqlite_reader(sql_type)
    if dialect in ("mysql", "mariadb") and isinstance(sql_type, (sqltypes.Date, sqltypes.DateTime)):
        return _mysql_date(sql_type), (dt.date, dt.datetime)
    return None


def _sqlite_reader(t: sqltypes.TypeEngine) -> _Found | None:
    if isinstance(t, sqltypes.Boolean):
        return _sqlite_boolean, ()
    if isinstance(t, sqltypes.Integer):
        return _sqlite_integer, (int,)
    if isinstance(t, sqltypes.Float):
        return _sqlite_float, (float,)
    if isinstance(t, sqltypes.Numeric):
        return (_sqlite_decimal(t.precision, t.scale or 0), ()) if t.precision is not None else (_text, (str,))
    if isinstance(t, sqltypes.DateTime):
        return _iso(dt.datetime, "a date and time such as '2024-01-31 12:00:00'"), ()
    if isinstance(t, sqltypes.Date):
        return _sqlite_date, ()
    if isinstance(t, sqltypes.Time):
        return _iso(dt.time, "a time of day such as '12:00:00'"), ()
    if isinstance(t, sqltypes._Binary):
        return _sqlite_binary, (bytes,)
    if isinstance(t, sqltypes.String):
        return _sqlite_string, (str,)
    return None  # JSON keeps SQLAlchemy's reader; other types were cast to text in the query


def _sqlite_boolean(value: Any) -> bool:
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise _Unfit("which is neither 0 nor 1, the integers SQLite stores booleans as.")


def _sqlite_integer(value: Any) -> int:
    if type(value) is int:
        return value
    raise _Unfit("which an integer column cannot hold without changing it.")


def _sqlite_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int and abs(value) <= _MAX_EXACT_FLOAT_INT:
        return float(value)
    raise _Unfit("which a double precision column cannot hold exactly.")


def _sqlite_decimal(precision: int, scale: int) -> Reader:
    limit = decimal.Decimal(10) ** (precision - scale)
    step = decimal.Decimal(1).scaleb(-scale)

    def read(value: Any) -> decimal.Decimal:
        if type(value) is int:
            number = decimal.Decimal(value)
        elif type(value) is float:
            # a REAL stored for a decimal: its shortest round-trip digits are the decimal that was written,
            # or, after float arithmetic in the source (0.1 + 0.2), its 15 significant digits: all a REAL
            # promises, and what SQLite itself prints
            number = decimal.Decimal(repr(value))
            if number != number.quantize(step, rounding=decimal.ROUND_DOWN):
                number = decimal.Decimal(f"{value:.15g}")
        elif isinstance(value, str):  # SQLite keeps numeric text it cannot convert losslessly as text
            try:
                number = decimal.Decimal(value.strip())
            except decimal.InvalidOperation:
                raise _Unfit("which is not a number.") from None
        else:
            raise _Unfit("which is not a number.")
        if not number.is_finite() or number != number.quantize(step, rounding=decimal.ROUND_DOWN):
            raise _Unfit(f"which has more than the {scale} decimal place(s) the column declares.")
        if abs(number) >= limit:
            raise _Unfit(f"which has more than the {precision - scale} integer digit(s) the column declares.")
        return number.quantize(step)

    return read


def _sqlite_date(value: Any) -> dt.date:
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Unfit("which is not a date written as 'YYYY-MM-DD'.")


def _iso(kind: type[dt.datetime] | type[dt.time], example: str) -> Reader:
    def read(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return kind.fromisoformat(value)
            except ValueError:
                pass
        raise _Unfit(f"which is not {example} (ISO 8601 text).")

    return read


def _sqlite_binary(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _Unfit("which a binary column cannot hold without choosing an encoding.")


def _sqlite_string(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unfit("which is not UTF-8 text, so a text column cannot hold it.") from None
    return _text(value)


def _text(value: Any) -> str:
    """The exact text of a value: integers in full, reals as their shortest round-trip digits."""
    if isinstance(value, str):
        return value
    if type(value) is float:
        return repr(value)
    if type(value) is int:
        return str(value)
    raise _Unfit("which a text column cannot hold without choosing an encoding.")


def _mysql_date(t: sqltypes.TypeEngine) -> Reader:
    """PyMySQL hands out a date it cannot represent as its text; a zero date lands as NULL (see docs/types.md)."""
    kind = dt.datetime if isinstance(t, sqltypes.DateTime) else dt.date

    def read(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if _MYSQL_ZERO_DATE.match(value):
            return None
        try:
            return kind.fromisoformat(value)
        except ValueError:
            raise _Unfit("which is not a valid date.") from None

    return read


def mysql_zero_date_as_null(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A MySQL date with a zero month or day as NULL, in the query: what :func:`_mysql_date` does in Python,
    for readers (connectorx) that fail on such a date instead of handing out its text."""
    zero = sa.or_(sa.func.year(column) == 0, sa.func.month(column) == 0, sa.func.dayofmonth(column) == 0)
    return sa.case((zero, sa.null()), else_=column)


def nullable_for_zero_dates(table: sa.Table, dialect: str, keep: set[str]) -> list[str]:
    """MySQL date columns declared NOT NULL, which land nullable since their zero dates land as NULL."""
    if dialect not in ("mysql", "mariadb"):
        return []
    return [
        c.name
        for c in table.columns
        if isinstance(c.type, (sqltypes.Date, sqltypes.DateTime)) and not c.nullable and c.name not in keep
    ]


class OutOfRangeError(ValueError):
    """A date or timestamp past the years 1-9999 in an Arrow batch (see :func:`check_date_range`)."""


_UNIT = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_FIRST_SECOND, _END_SECOND = -62_135_596_800, 253_402_300_800  # 0001-01-01, 10000-01-01 (UTC)
_FIRST_DAY, _END_DAY = -719_162, 2_932_897


def check_date_range(item: Any) -> Any:
    """Refuse Arrow batches holding dates outside the years 1-9999.

    connectorx reads PostgreSQL's ``infinity`` as a timestamp in the year 262143, silently; no warehouse
    timestamp, Arrow client or Python ``datetime`` holds what PostgreSQL means by it (nor years before 1).
    One vectorised min/max per date column and batch.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(item, (pa.Table, pa.RecordBatch)):
        return item
    for index, field in enumerate(item.schema):
        if pa.types.is_timestamp(field.type):
            low, high = _FIRST_SECOND * _UNIT[field.type.unit], _END_SECOND * _UNIT[field.type.unit]
        elif pa.types.is_date32(field.type):
            low, high = _FIRST_DAY, _END_DAY
        else:
            continue
        bounds = pc.min_max(item.column(index))
        smallest, largest = bounds["min"], bounds["max"]
        if smallest.is_valid and (smallest.value < low or largest.value >= high):
            raise OutOfRangeError(f"column {field.name!r} holds a date outside the years 1 to 9999")
    return item


def epochs_to_dates(item: Any, kinds: dict[str, str]) -> Any:
    """Turn the day/microsecond numbers of :func:`oso_dagster.type_mapping.epoch_expression` back into Arrow
    dates and timestamps (a cast that only relabels the numbers; ``±infinity`` stays DuckDB's infinity)."""
    import pyarrow as pa

    if not isinstance(item, (pa.Table, pa.RecordBatch)):
        return item
    for name, kind in kinds.items():
        index = item.schema.get_field_index(name)
        if index < 0:
            continue
        column = item.column(index)
        if kind == "date":
            target, width = pa.date32(), pa.int32()
        else:
            target, width = pa.timestamp("us", tz="UTC" if kind == "timestamptz" else None), pa.int64()
        if not pa.types.is_integer(column.type):
            continue
        converted = column.cast(width).cast(target)
        item = item.set_column(index, item.schema.field(index).with_type(target), converted)
    return item


def diagnose_read_error(engine: Engine, table: sa.Table, qualified_name: str) -> SourceValueError | None:
    """After a failed read: the first PostgreSQL date/timestamp value no warehouse timestamp holds, if any."""
    if engine.dialect.name != "postgresql":
        return None
    columns = [c for c in table.columns if isinstance(c.type, (sqltypes.Date, sqltypes.DateTime))]
    try:
        with engine.connect() as conn:
            for column in columns:
                out_of_range = sa.or_(
                    sa.not_(sa.func.isfinite(column)),
                    column < sa.literal("0001-01-01", sa.Date),
                    column >= sa.literal("10000-01-01", sa.Date),
                )
                query = sa.select(sa.cast(column, sa.Text)).where(out_of_range).limit(1)
                value = conn.execute(query).scalar()
                if value is not None:
                    return SourceValueError(
                        f"Table {qualified_name!r}, column {column.name!r} ({_type_name(column.type)}) holds "
                        f"{value!r}, which this destination and reader cannot hold (BigQuery's timestamps and "
                        "Python's datetimes span the years 1 to 9999, without infinity). Nothing was loaded for "
                        f"this table. Land the column as text with \"columns\": {{\"{column.name}\": \"text\"}} "
                        "in the table's entry of sql_assets, or replicate a view that maps such values, e.g. "
                        f"CASE WHEN isfinite({column.name}) THEN {column.name} END."
                    )
    except sa.exc.SQLAlchemyError:
        return None  # the diagnosis is a courtesy; the original error is reported instead
    return None


def _type_name(sql_type: sqltypes.TypeEngine) -> str:
    try:
        return str(sql_type.compile())
    except Exception:
        return type(sql_type).__name__.upper()


def _kind(value: Any) -> str:
    return {int: "whole number", float: "real number", str: "text", bytes: "byte string"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
