"""Which source column types travel as they are, and which are cast in the source query to stay lossless.

The rule is a pure function of the column type and the dialect, used three ways: to cast in the
``SELECT`` (``source_cast``), to tell dlt the resulting type (``dlt_type``), and to decide whether the
fast connectorx backend reads the table exactly (``connectorx_reads_exactly``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sqltypes

# Widest decimal both DuckDB and BigQuery NUMERIC/BIGNUMERIC paths hold exactly as a decimal.
MAX_DECIMAL_PRECISION = 38


def unwrap(sql_type: sqltypes.TypeEngine) -> sqltypes.TypeEngine:
    """PostgreSQL domains behave like their base type."""
    while hasattr(sql_type, "data_type") and type(sql_type).__name__ == "DOMAIN":
        sql_type = sql_type.data_type
    return sql_type


class Geometry(sqltypes.UserDefinedType[Any]):
    """A MySQL/MariaDB spatial column, which SQLAlchemy does not know (it would reflect as ``NullType``)."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "GEOMETRY"


MYSQL_SPATIAL_TYPES = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                       "multipolygon", "geometrycollection", "geomcollection")


def source_expression(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any] | None:
    """An expression to read a column through where a ``CAST`` cannot: MySQL geometry as (E)WKT text, and
    PostgreSQL ``inet`` as PostgreSQL prints it.

    ``ST_AsText`` prints coordinates with 17 significant digits, so they round-trip; a non-zero SRID is
    kept as PostGIS's ``SRID=4326;POINT(1 2)``. ``CAST(inet AS text)`` always adds the prefix length
    (``10.1.0.1/32``); ``abbrev(inet)`` is the type's own output (``10.1.0.1``, ``10.1.0.0/16``), what psql
    and every client show, so ``where ip = '10.1.0.1'`` finds the row. (``cidr`` keeps ``CAST``: its
    ``abbrev`` would shorten ``10.1.0.0/16`` to ``10.1/16``.)
    """
    if dialect == "postgresql" and type(unwrap(column.type)).__name__ == "INET":
        return sa.func.abbrev(column)
    if dialect in ("mysql", "mariadb") and isinstance(column.type, Geometry):
        wkt = sa.func.ST_AsText(column)
        srid = sa.func.ST_SRID(column)
        return sa.case((srid == 0, wkt), else_=sa.func.concat("SRID=", srid, ";", wkt))
    return None


def duckdb_type(sql_type: sqltypes.TypeEngine, dialect: str) -> str | None:
    """The DuckDB type a column lands as where dlt has no data type for it, read as text (:func:`interval_text`)
    and cast by DuckDB: PostgreSQL ``interval`` and MySQL's ``TIME`` (a signed duration, up to 838 hours)
    as ``INTERVAL``, which holds PostgreSQL's months, days and microseconds apart, exactly."""
    t = unwrap(sql_type)
    if dialect == "postgresql" and (isinstance(t, sqltypes.Interval) or type(t).__name__ == "INTERVAL"):
        return "INTERVAL"
    if dialect in ("mysql", "mariadb") and isinstance(t, sqltypes.Time):
        return "INTERVAL"
    return None


def interval_text(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any] | None:
    """A PostgreSQL interval as ``'<months> months <days> days <µs> microseconds'``, which DuckDB reads exactly.

    PostgreSQL's own text depends on the session's ``IntervalStyle``; these three numbers are the value.
    ``extract`` is exact (numeric) since PostgreSQL 14. MySQL's ``TIME`` text (``-838:59:59.000000``) is
    read by DuckDB as it is (``None``: the plain text cast).
    """
    if dialect != "postgresql":
        return None

    def part(field: str) -> sa.ColumnElement[Any]:
        return sa.extract(field, column)

    months = part("year") * 12 + part("month")
    micros = (part("hour") * 3600 + part("minute") * 60) * 1_000_000 + part("microseconds")
    def digits(number: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.cast(sa.cast(number, sa.BigInteger), sa.Text)

    # ``||``, not concat(): NULL stays NULL
    return digits(months) + " months " + digits(part("day")) + " days " + digits(micros) + " microseconds"


def source_cast(sql_type: sqltypes.TypeEngine, dialect: str) -> sqltypes.TypeEngine | None:
    """The type to ``CAST`` a column to in the source query, or ``None`` to read it as it is."""
    t = unwrap(sql_type)
    name = type(t).__name__.upper()
    if dialect in ("mysql", "mariadb"):
        if isinstance(t, sqltypes.BigInteger) and getattr(t, "unsigned", False):
            return sa.Numeric(20, 0)  # BIGINT UNSIGNED reaches 2**64-1, past int64
        if isinstance(t, Geometry):
            return sa.Text()  # read through source_expression as WKT
        if name == "SET":
            return sa.Text()  # the driver returns a Python set; 'a,b' text keeps it
        if name == "YEAR":
            return sa.Integer()
        if isinstance(t, sqltypes.Time):
            return sa.Text()  # MySQL TIME is a duration (-838:59:59..838:59:59), not a time of day
        if name == "BIT":
            # BIT(64) reaches 2**64-1; CAST AS SIGNED would wrap it to -1
            return sa.Numeric(20, 0) if (getattr(t, "length", None) or 1) > 63 else sa.BigInteger()
        if isinstance(t, sqltypes.Float):
            # the text protocol prints FLOAT with 6 digits and DOUBLE may reflect as decimal:
            # CAST AS DOUBLE sends the exact binary value
            return sa.Double(asdecimal=False)
    if dialect == "postgresql":
        if isinstance(t, sqltypes.REAL):
            # float4 travels as shortest text ('3.4028235e+38'), which parses to a different double;
            # float8 of it is the exact value
            return sa.Double(asdecimal=False)
        if isinstance(t, sqltypes.Time) and t.timezone:
            return sa.Text()  # time with time zone: the offset has no warehouse type
    if isinstance(t, sqltypes.Float):
        return None
    if isinstance(t, sqltypes.Numeric):
        scale = t.scale or 0
        if t.precision is None or t.precision > MAX_DECIMAL_PRECISION or not 0 <= scale <= t.precision:
            return sa.Text()  # unbounded or too wide for any warehouse decimal: exact digits as text
        return None
    if isinstance(t, sqltypes.Interval):
        return sa.Text()  # months/days/µs do not fit one duration type losslessly
    if _is_native(t):
        return None
    return sa.Text()  # inet, money, bit strings, ranges, geometry, unknown: the database's own text form


def dlt_type(sql_type: sqltypes.TypeEngine, dialect: str, json_as_text: bool = False) -> sqltypes.TypeEngine:
    """The SQLAlchemy type dlt should derive the warehouse column from (after :func:`source_cast`).

    JSON and array columns are read as their JSON text (:func:`json_text`) and land as ``JSON``, or, with
    ``json_as_text`` (BigQuery), as that text (see :func:`is_nested`).
    """
    cast = source_cast(sql_type, dialect)
    if cast is not None:
        return cast
    if is_nested(sql_type, dialect):
        return sa.Text() if json_as_text else sa.JSON()
    t = unwrap(sql_type)
    if dialect in ("mysql", "mariadb") and type(t).__name__.upper() == "TIMESTAMP":
        # a MySQL TIMESTAMP is an instant; the session reads it in UTC (see database.create_source_engine)
        return sa.DateTime(timezone=True)
    return t


def dlt_column_type(sql_type: sqltypes.TypeEngine, dialect: str, json_as_text: bool = False) -> sqltypes.TypeEngine:
    """:func:`dlt_type` in the form dlt's reflection maps: our ``type_adapter_callback``.

    Under SQLAlchemy 2.1 ``Float`` no longer subclasses ``Numeric``, and dlt's reflection (which checks for
    ``Numeric``) gives float columns no type at all (dlt-hub/dlt#4313): an empty or all-NULL float column would
    then land as text, or not at all. A ``Numeric(asdecimal=False)`` is what dlt maps to ``double``.
    """
    t = dlt_type(sql_type, dialect, json_as_text)
    if isinstance(t, sqltypes.Float) and not isinstance(t, sqltypes.Numeric):
        return sa.Numeric(asdecimal=False)
    return t


# Scalar types every backend and warehouse carry as they are.
_SCALARS = (
    sqltypes.Integer,
    sqltypes.String,
    sqltypes.Boolean,
    sqltypes.Date,
    sqltypes.DateTime,
    sqltypes.Time,
    sqltypes._Binary,
    sqltypes.Uuid,
)


def _is_native(t: sqltypes.TypeEngine) -> bool:
    if type(t).__name__.upper() == "SET":
        return False
    return isinstance(t, (*_SCALARS, sqltypes.JSON, sqltypes.ARRAY))


def connectorx_reads_exactly(columns: Iterable[sa.Column], dialect: str) -> bool:
    """True when every column (after casts) is a type connectorx reads without loss (PostgreSQL, and
    MySQL/MariaDB tables of plain types: see :func:`_mysql_connectorx_exact`)."""
    if dialect in ("mysql", "mariadb"):
        return all(_mysql_connectorx_exact(column, dialect) for column in columns)
    if dialect != "postgresql":
        return False
    for column in columns:
        t = dlt_type(column.type, dialect)
        if isinstance(t, (sqltypes.JSON, sqltypes.ARRAY)):
            continue  # read as their JSON text (see json_text)
        if isinstance(t, sqltypes.Enum):
            return False
        if isinstance(t, sqltypes.Float):
            continue
        if isinstance(t, sqltypes.Numeric):
            continue  # bounded numerics travel as text (see connectorx_decimals); the rest became text
        if isinstance(t, sqltypes.BigInteger) and getattr(t, "unsigned", False):
            return False
        if not isinstance(t, _SCALARS):
            return False
    return True


# MySQL types connectorx decodes exactly as they are (checked against the pyarrow path in
# tests/replication/test_types_mariadb.py); anything else keeps the pyarrow backend
_MYSQL_CX_TEXT = {"VARCHAR", "CHAR", "NVARCHAR", "NCHAR", "TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT"}
_MYSQL_CX_INTEGERS = {"TINYINT", "SMALLINT", "MEDIUMINT", "INTEGER", "INT", "BIGINT"}


def _mysql_connectorx_exact(column: sa.Column, dialect: str) -> bool:
    """Whether connectorx reads this MySQL/MariaDB column exactly.

    Its MySQL decoding panics on zero dates (they are turned into NULL in the query, as the pyarrow path
    lands them), reads ``TIME`` only within a day, ``DECIMAL`` as ``decimal128(38, 10)`` (read as text and
    parsed instead, see :func:`connectorx_decimals`), and ``TIMESTAMP`` in its own session's time zone:
    tables with ``TIME``, ``TIMESTAMP``, ``YEAR``, ``BIT``, ``ENUM``/``SET``, JSON, binary, geometry or
    unsigned ``BIGINT`` columns keep the pyarrow backend.
    """
    t = unwrap(column.type)
    name = type(t).__name__.upper()
    cast = source_cast(column.type, dialect)
    if cast is not None:
        # floats travel as DOUBLE (float64, exact); decimals too wide for the warehouse as their text
        return isinstance(cast, sa.Double) or (isinstance(t, sqltypes.Numeric) and isinstance(cast, sa.Text))
    if is_nested(column.type, dialect) or isinstance(t, (sqltypes.Enum, sqltypes.Boolean)):
        return False
    if name in _MYSQL_CX_INTEGERS or name in _MYSQL_CX_TEXT or name in ("DATE", "DATETIME"):
        return True
    return isinstance(t, sqltypes.Numeric) and not isinstance(t, sqltypes.Float) and name in ("DECIMAL", "NUMERIC")


def connectorx_decimals(columns: Iterable[sa.Column], dialect: str) -> dict[str, tuple[int, int]]:
    """``numeric(p, s)`` columns that connectorx should read as text, with the precision and scale to parse.

    connectorx decodes PostgreSQL's binary numeric into ``decimal128(38, 10)``, slowly (a third of the read
    time of a table with one numeric column in bench/replicate.py), and cannot read a scale above 10. The
    server's text form of the same value is exact at any precision; Arrow parses it into the declared
    ``decimal128(p, s)`` in a tenth of the time.
    """
    if dialect not in ("postgresql", "mysql", "mariadb"):
        return {}
    decimals: dict[str, tuple[int, int]] = {}
    for column in columns:
        t = dlt_type(column.type, dialect)
        if isinstance(t, sqltypes.Numeric) and not isinstance(t, sqltypes.Float) and t.precision is not None:
            decimals[column.name] = (t.precision, t.scale or 0)
    return decimals


def is_nested(sql_type: sqltypes.TypeEngine, dialect: str) -> bool:
    """True for a column that lands as JSON (json/jsonb, arrays).

    On BigQuery such columns land as ``STRING`` holding the JSON text: BigQuery cannot load its ``JSON`` type
    from parquet, and the JSON-lines files it can load them from lose float ``NaN``/``±Infinity`` in every
    other column (dlt writes them as null); its ``JSON`` type would also round integers past 2**53.
    """
    return source_cast(sql_type, dialect) is None and isinstance(unwrap(sql_type), (sqltypes.JSON, sqltypes.ARRAY))


def json_text(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """A JSON or array column (:func:`is_nested`) as the source's own JSON text.

    Read as text, a document reaches the warehouse as the source holds it. Parsed by the driver, it would be
    inferred into one Arrow struct per column (an ``{}`` gaining its neighbours' keys as nulls), lose JSON
    ``null`` to SQL ``NULL``, and fail on integers past 64 bits. PostgreSQL arrays go through ``to_json``
    (their text is ``{1,2}``); MySQL/MariaDB hand out JSON as text already; SQLite's is read through a check
    that it is JSON at all (SQLite does not enforce it).
    """
    if dialect == "postgresql":
        value = sa.func.to_json(column) if isinstance(unwrap(column.type), sa.ARRAY) else column
        return sa.cast(value, sa.Text())
    return sa.type_coerce(column, sa.Text())


# DuckDB's own encoding of +infinity for TIMESTAMP (microseconds) and DATE (days); -infinity is the negation
DUCKDB_INFINITE_MICROS = 2**63 - 1
DUCKDB_INFINITE_DAYS = 2**31 - 1


def epoch_kind(sql_type: sqltypes.TypeEngine, dialect: str) -> str | None:
    """``date``, ``timestamp`` or ``timestamptz`` for a PostgreSQL column that may hold ``±infinity``."""
    t = unwrap(sql_type)
    if dialect != "postgresql":
        return None
    if isinstance(t, sqltypes.DateTime):
        return "timestamptz" if t.timezone else "timestamp"
    if isinstance(t, sqltypes.Date):
        return "date"
    return None


def epoch_expression(column: sa.ColumnElement[Any], kind: str) -> sa.ColumnElement[Any]:
    """A PostgreSQL date/timestamp as days/microseconds since 1970, ``±infinity`` as DuckDB encodes them.

    Neither Python's ``datetime`` (the pyarrow backend) nor connectorx can read ``infinity``, which DuckDB's
    ``TIMESTAMP``/``DATE`` hold; as numbers it travels, and Arrow turns them back into dates (see
    :func:`oso_dagster.run.value_checks.epochs_to_dates`). ``extract`` is exact (numeric) since PostgreSQL 14.
    """
    if kind == "date":
        top, finite = DUCKDB_INFINITE_DAYS, column - sa.literal_column("DATE '1970-01-01'")
    else:
        top = DUCKDB_INFINITE_MICROS
        finite = sa.cast(sa.extract("epoch", column) * 1_000_000, sa.BigInteger)
    return sa.case(
        (column == sa.literal_column("'infinity'"), sa.literal(top, sa.BigInteger)),
        (column == sa.literal_column("'-infinity'"), sa.literal(-top, sa.BigInteger)),
        else_=finite,
    )
