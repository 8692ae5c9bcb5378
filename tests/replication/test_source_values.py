"""Values a column's type does not promise: SQLite's loose typing, MySQL zero dates and spatial columns,
PostgreSQL's infinite timestamps. Each lands exactly, or the run fails naming table, column and value,
without a retry and without touching what the warehouse already holds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from conftest import run_sql

from replication.helpers import (
    column_types,
    failure_text,
    query,
    rows_by_id,
    run,
    run_ok,
    set_secret,
    warehouse,
)
from replication.matrix import Col, create_statements, expected_rows, mismatches

pytestmark = pytest.mark.slow


def _fails_clearly(name: str, table: str, *expected: str, backend: str = "auto", **entry: Any) -> str:
    result = run(name, [{"table": table, "backend": backend, **entry}])
    assert not result.success
    text = failure_text(result)
    for part in expected:
        assert part in text, text[:3000]
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events, "a value problem is not retried"
    return text


def _good_copy_then_unfit(
    monkeypatch: pytest.MonkeyPatch, url: str, name: str, table: str, create: list[str], unfit_insert: str,
    *expected: str, backend: str = "auto",
) -> None:
    """Land a good copy of ``table``, add a row its types do not promise, and check the run fails clearly."""
    run_sql(url, *create)
    set_secret(monkeypatch, name, url)
    run_ok(name, [{"table": table, "backend": backend}])
    run_sql(url, unfit_insert)
    _fails_clearly(name, table, *expected, backend=backend)


# (declared type, a value SQLite keeps in it that the type does not promise, what the error names)
SQLITE_UNFIT = [
    ("INTEGER", "1.5", "holds 1.5 (real number)"),  # SQLAlchemy's reader truncated this to 1, silently
    ("INTEGER", "'abc'", "holds 'abc' (text)"),
    ("BOOLEAN", "2", "holds 2 (whole number), which is neither 0 nor 1"),  # was True, silently
    ("DECIMAL(10,2)", "3.14159", "more than the 2 decimal place(s)"),  # was rounded to 3.14, silently
    ("DECIMAL(4,2)", "123.5", "more than the 2 integer digit(s)"),
    ("FLOAT", "'n/a'", "holds 'n/a' (text)"),
    ("DATETIME", "1704103200", "holds 1704103200 (whole number), which is not a date and time"),
    ("DATETIME", "'n/a'", "holds 'n/a' (text)"),
    ("DATE", "'2024/01/02'", "which is not a date written as 'YYYY-MM-DD'"),
    ("TEXT", "x'00ff'", "which is not UTF-8 text"),
    ("JSON", "'{not json'", "holds '{not json' (text), which is not a JSON document"),
]


@pytest.mark.parametrize(("declared", "literal", "named"), SQLITE_UNFIT, ids=[f"{d}-{v}" for d, v, _ in SQLITE_UNFIT])
def test_sqlite_value_its_column_cannot_hold_fails_naming_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, declared: str, literal: str, named: str
) -> None:
    _good_copy_then_unfit(
        monkeypatch, sqlite_url, "lite", "loose",
        [f"CREATE TABLE loose (id INTEGER PRIMARY KEY, v {declared})", "INSERT INTO loose VALUES (1, NULL)"],
        f"INSERT INTO loose VALUES (2, {literal})",
        "Table 'loose', column 'v'", named, 'add "columns": {"v": "text"} to the table\'s entry',
    )
    assert rows_by_id("lite", "loose") == {1: {"id": 1, "v": None}}  # the last good copy stays


def test_unfit_value_in_an_incremental_table_fails_naming_it(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check on dlt's path (merge), where the error arrives wrapped in dlt's extraction error."""
    from dlt.sources import incremental

    run_sql(sqlite_url, "CREATE TABLE events (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, qty INTEGER)",
            "INSERT INTO events VALUES (1, 1, 10)")
    set_secret(monkeypatch, "lite", sqlite_url)
    table = {"table": "events", "incremental": incremental("seq")}
    run_ok("lite", [table])
    run_sql(sqlite_url, "INSERT INTO events VALUES (2, 2, 2.5)")
    result = run("lite", [table])
    assert not result.success
    text = failure_text(result)
    assert "Table 'events', column 'qty' (declared INTEGER) holds 2.5 (real number)" in text, text[:3000]
    assert "STEP_UP_FOR_RETRY" not in [e.event_type_value for e in result.all_events]
    assert rows_by_id("lite", "events") == {1: {"id": 1, "seq": 1, "qty": 10}}


def test_sqlite_loose_values_that_fit_land_exactly(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [
        # a REAL in a NUMERIC column: its shortest round-trip digits, not SQLite's 15-digit CAST text ('0.3')
        Col("n", "NUMERIC", (("0.1 + 0.2", "0.30000000000000004"), ("12", "12"), ("'abc'", "abc"))),
        Col("untyped", "", (("0.1 + 0.2", "0.30000000000000004"), ("1e300", "1e+300"))),
        Col("money", "DECIMAL(18,2)", (("19.99", Decimal("19.99")), ("7", Decimal("7.00")),
                                       ("'12.5'", Decimal("12.50")),
                                       ("0.1 + 0.2", Decimal("0.30")),  # float arithmetic in the source
                                       ("12345678901234.56", Decimal("12345678901234.56")))),
        Col("f", "DOUBLE", (("3", 3.0), ("9007199254740992", 9007199254740992.0))),
        Col("vc", "VARCHAR(10)", (("123", "123"),)),
        Col("bl", "BLOB", (("'abc'", b"abc"),)),
        Col("dt", "DATETIME", (("'2024-01-01T10:00:00'", dt.datetime(2024, 1, 1, 10)),
                               ("'2024-01-01 10:00:00.123'", dt.datetime(2024, 1, 1, 10, 0, 0, 123000)))),
    ]
    run_sql(sqlite_url, *create_statements("fits", columns))
    set_secret(monkeypatch, "lite", sqlite_url)
    run_ok("lite", [{"table": "fits"}])
    problems = mismatches(rows_by_id("lite", "fits"), expected_rows(columns))
    assert problems == [], "\n".join(problems)
    assert column_types("lite", "fits")["money"] == "DECIMAL(18,2)"


@pytest.mark.mariadb
def test_mysql_zero_dates_land_as_null(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:  # zero dates exist wherever sql_mode once allowed them
        conn.execute(sa.text("SET SESSION sql_mode = ''"))
        conn.execute(sa.text(
            "CREATE TABLE legacy (id int PRIMARY KEY, d date, dt datetime(6) NOT NULL, ts timestamp(6) NULL)"))
        conn.execute(sa.text(
            "INSERT INTO legacy VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), "
            "(2, '2020-00-15', '2020-02-00 10:00:00', NULL), "
            "(3, '2020-01-31', '2020-01-31 23:59:59.5', '2020-01-31 00:00:01')"))
    engine.dispose()
    set_secret(monkeypatch, "my", mysql_url)
    for table in ({"table": "legacy"}, {"table": "legacy", "write_disposition": "append"}):  # direct, dlt
        run_ok("my", [table])
        rows = rows_by_id("my", "legacy")
        assert [rows[i]["d"] for i in (1, 2, 3)] == [None, None, dt.date(2020, 1, 31)]
        assert [rows[i]["dt"] for i in (1, 2, 3)] == [None, None, dt.datetime(2020, 1, 31, 23, 59, 59, 500000)]
        assert rows[1]["ts"] is None and rows[3]["ts"] == dt.datetime(2020, 1, 31, 0, 0, 1, tzinfo=dt.UTC)
    nullable = query("SELECT is_nullable FROM information_schema.columns "
                     "WHERE table_schema = 'my' AND table_name = 'legacy' AND column_name = 'dt'")
    assert nullable == [("YES",)]  # NOT NULL in the source, but its zero dates land as NULL


@pytest.mark.mariadb
def test_mysql_geometry_lands_as_wkt(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(mysql_url,
            "CREATE TABLE places (id int PRIMARY KEY, g geometry, p point)",
            "INSERT INTO places VALUES (1, ST_GeomFromText('POINT(0.1 0.30000000000000004)'), "
            "ST_GeomFromText('POINT(13.4 52.5)', 4326)), "
            "(2, ST_GeomFromText('LINESTRING(1 2,3.333333333333333 4)'), NULL)")
    set_secret(monkeypatch, "geo", mysql_url)
    run_ok("geo", [{"table": "places"}])
    assert column_types("geo", "places") == {"id": "BIGINT", "g": "VARCHAR", "p": "VARCHAR"}
    assert rows_by_id("geo", "places") == {
        1: {"id": 1, "g": "POINT(0.1 0.30000000000000004)", "p": "SRID=4326;POINT(13.4 52.5)"},
        2: {"id": 2, "g": "LINESTRING(1 2,3.333333333333333 4)", "p": None},
    }


INFINITE_ROWS = [
    "(1, '2024-02-29 12:00:00.000001', '2024-06-01 12:00:00+05:30', '2024-02-29')",
    "(2, 'infinity', 'infinity', 'infinity')",
    "(3, '-infinity', '-infinity', '-infinity')",
    "(4, NULL, NULL, NULL)",
    "(5, '0100-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '4713-01-01 BC')",
    "(6, '9999-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', '0001-01-01')",
]
# DuckDB's text of what landed: infinity as infinity, BC years as DuckDB spells them
INFINITE_LANDED = {
    1: ("2024-02-29 12:00:00.000001", "2024-06-01 06:30:00+00", "2024-02-29"),
    2: ("infinity", "infinity", "infinity"),
    3: ("-infinity", "-infinity", "-infinity"),
    4: (None, None, None),
    5: ("0100-01-01 (BC) 00:00:00", "4713-01-01 (BC) 00:00:00+00", "4713-01-01 (BC)"),
    6: ("9999-12-31 23:59:59.999999", "1970-01-01 00:00:00+00", "0001-01-01"),
}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_postgres_infinite_timestamps_land_in_duckdb(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """``valid_to timestamp default 'infinity'``: DuckDB's TIMESTAMP and DATE hold ±infinity, on both paths."""
    run_sql(pg_url, "CREATE TABLE spans (id int PRIMARY KEY, valid_to timestamp, at timestamptz, d date)",
            f"INSERT INTO spans VALUES {', '.join(INFINITE_ROWS)}")
    for name, disposition in (("direct", "replace"), ("via_dlt", "append")):
        set_secret(monkeypatch, name, pg_url)
        run_ok(name, [{"table": "spans", "backend": backend, "write_disposition": disposition}])
        assert column_types(name, "spans") == {
            "id": "BIGINT", "valid_to": "TIMESTAMP", "at": "TIMESTAMP WITH TIME ZONE", "d": "DATE"}
        with duckdb.connect(str(warehouse()), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            landed = con.sql(f'SELECT id, valid_to::VARCHAR, "at"::VARCHAR, d::VARCHAR FROM {name}.spans').fetchall()
        assert {row[0]: row[1:] for row in landed} == INFINITE_LANDED, name


@pytest.mark.postgres
@pytest.mark.parametrize(("ddl", "literal"), [("timestamp", "infinity"), ("timestamptz", "-infinity"),
                                               ("date", "0100-01-01 BC")])
def test_postgres_timestamp_python_cannot_hold_fails_naming_it(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, ddl: str, literal: str
) -> None:
    """The sqlalchemy backend reads Python datetimes, which hold neither infinity nor years before 1."""
    _good_copy_then_unfit(
        monkeypatch, pg_url, "pgv", "spans",
        [f"CREATE TABLE spans (id int PRIMARY KEY, valid_to {ddl})", "INSERT INTO spans VALUES (1, '2024-01-01')"],
        f"INSERT INTO spans VALUES (2, '{literal}')",
        "Table 'spans', column 'valid_to'", f"holds '{literal}'", "CASE WHEN isfinite(valid_to)",
        backend="sqlalchemy",
    )
    assert list(rows_by_id("pgv", "spans")) == [1]


def test_columns_option_lands_a_column_as_the_named_type(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way out named by every value failure: ``columns={"col": "text"}`` (or dlt's hint shape), cast by the
    source database, on both load paths."""
    run_sql(source_url,
            "CREATE TABLE loose (id INTEGER PRIMARY KEY, v INTEGER, amount DECIMAL(10,2), code VARCHAR(20))",
            "INSERT INTO loose VALUES (1, 7, 12.5, '42'), (2, NULL, -0.01, '-9000000000')")
    if source_url.startswith("sqlite"):  # SQLite keeps what its INTEGER column cannot hold
        run_sql(source_url, "INSERT INTO loose VALUES (3, 1.5, 0, '0')")
    columns = {"v": "text", "amount": {"data_type": "text"}, "code": "bigint"}
    for name, disposition in (("direct", "replace"), ("via_dlt", "append")):
        set_secret(monkeypatch, name, source_url)
        run_ok(name, [{"table": "loose", "write_disposition": disposition, "columns": columns}])
        assert column_types(name, "loose") == {"id": "BIGINT", "v": "VARCHAR", "amount": "VARCHAR", "code": "BIGINT"}
        rows = rows_by_id(name, "loose")
        held = "12.5" if source_url.startswith("sqlite") else "12.50"  # SQLite holds the REAL 12.5
        assert rows[1] == {"id": 1, "v": "7", "amount": held, "code": 42}, name
        assert rows[2] == {"id": 2, "v": None, "amount": "-0.01", "code": -9000000000}, name
        if source_url.startswith("sqlite"):
            assert rows[3]["v"] == "1.5"


@pytest.mark.postgres
def test_columns_option_loads_infinity_as_text_where_the_reader_cannot(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(pg_url, "CREATE TABLE spans (id int PRIMARY KEY, valid_to timestamp)",
            "INSERT INTO spans VALUES (1, 'infinity'), (2, '2024-01-01 10:00')")
    set_secret(monkeypatch, "pgv", pg_url)
    run_ok("pgv", [{"table": "spans", "backend": "sqlalchemy", "columns": {"valid_to": "text"}}])
    assert rows_by_id("pgv", "spans") == {1: {"id": 1, "valid_to": "infinity"},
                                          2: {"id": 2, "valid_to": "2024-01-01 10:00:00"}}


def test_columns_option_is_checked(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from oso_dagster.errors import ConfigurationError

    from replication.helpers import build

    with pytest.raises(ConfigurationError, match=r"columns entry 'v': 'varchar' is not a type to land it as; use one"):
        build("lite", [{"table": "loose", "columns": {"v": "varchar"}}])
    run_sql(sqlite_url, "CREATE TABLE loose (id INTEGER PRIMARY KEY, v INTEGER)")
    set_secret(monkeypatch, "lite", sqlite_url)
    text = _fails_clearly("lite", "loose", "the 'columns' option names ['w'], which do not exist",
                          columns={"w": "text"})
    assert "its columns are ['id', 'v']" in text
