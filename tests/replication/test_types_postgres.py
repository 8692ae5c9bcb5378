"""PostgreSQL type matrix: every value must come back from DuckDB exactly, on both backends."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import run_sql

from replication.helpers import (
    assert_dlt_path_lands_the_same,
    column_types,
    materialization_metadata,
    rows_by_id,
    run_ok,
    set_secret,
)
from replication.matrix import Col, Interval, Json, create_statements, expected_rows, mismatches

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

UTC = dt.UTC
MIN_TS = dt.datetime(1, 1, 1)
MAX_TS = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)

# Scalar types connectorx can read; tested on both backends.
SCALARS = [
    Col("i2", "smallint", (("-32768", -32768), ("32767", 32767), ("0", 0))),
    Col("i4", "integer", (("-2147483648", -2147483648), ("2147483647", 2147483647))),
    Col("i8", "bigint", (("-9223372036854775808", -(2**63)), ("9223372036854775807", 2**63 - 1))),
    Col("n_12_2", "numeric(12,2)", (("9999999999.99", Decimal("9999999999.99")), ("-0.01", Decimal("-0.01")),
                                    ("0", Decimal("0.00")))),
    Col("n_18_10", "numeric(18,10)", (("12345678.0123456789", Decimal("12345678.0123456789")),
                                      ("-0.0000000001", Decimal("-0.0000000001")))),
    Col("f8", "double precision", (("'NaN'", float("nan")), ("'Infinity'", float("inf")),
                                   ("'-Infinity'", float("-inf")),
                                   ("1.7976931348623157e308", 1.7976931348623157e308),
                                   ("5e-324", 5e-324), ("0.1", 0.1), ("'-0'", -0.0))),
    Col("f4", "real", (("'NaN'", float("nan")), ("'Infinity'", float("inf")), ("'-Infinity'", float("-inf")),
                       ("1.5", 1.5), ("3.4028234663852886e38", 3.4028234663852886e38))),
    Col("t", "text", (("''", ""), ("NULL", None), ("'üñí 😀 \t\n'", "üñí 😀 \t\n"))),
    Col("vc", "varchar(10)", (("''", ""), ("'abc'", "abc"))),
    Col("ch", "char(3)", (("'ab'", "ab "),)),
    Col("by", "bytea", (("''::bytea", b""), ("'\\x00ff'::bytea", b"\x00\xff"), ("NULL", None))),
    Col("b", "boolean", (("true", True), ("false", False), ("NULL", None))),
    Col("d", "date", (("'0001-01-01'", dt.date(1, 1, 1)), ("'9999-12-31'", dt.date(9999, 12, 31)))),
    Col("ts", "timestamp", (("'0001-01-01 00:00:00'", MIN_TS), ("'9999-12-31 23:59:59.999999'", MAX_TS),
                            ("'2024-02-29 12:00:00.000001'", dt.datetime(2024, 2, 29, 12, 0, 0, 1)))),
    Col("tstz", "timestamptz", (("'0001-01-01 00:00:00+00'", MIN_TS.replace(tzinfo=UTC)),
                                ("'9999-12-31 23:59:59.999999+00'", MAX_TS.replace(tzinfo=UTC)),
                                ("'2024-06-01 12:00:00+05:30'", dt.datetime(2024, 6, 1, 6, 30, tzinfo=UTC)))),
    Col("tm", "time", (("'00:00:00'", dt.time(0)), ("'23:59:59.999999'", dt.time(23, 59, 59, 999999)))),
    Col("u", "uuid", (("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),)),
]

# Types that need the pyarrow backend and/or a lossless cast in the source query.
EXTRAS = [
    Col("n_unb", "numeric", (("123456789012345678901234567890.123456789012345678901234567890",
                              "123456789012345678901234567890.123456789012345678901234567890"),
                             ("'NaN'", "NaN"),
                             ("-0.000000000000000000000000000001", "-0.000000000000000000000000000001"),
                             ("'Infinity'", "Infinity"), ("1.10", "1.10"))),
    Col("n_38_10", "numeric(38,10)", (("9999999999999999999999999999.9999999999",
                                       Decimal("9999999999999999999999999999.9999999999")),
                                      ("-0.0000000001", Decimal("-0.0000000001")))),
    Col("n_38_0", "numeric(38,0)", (("99999999999999999999999999999999999999",
                                     Decimal("99999999999999999999999999999999999999")),)),
    Col("n_50_20", "numeric(50,20)", (("123456789012345678901234567890.12345678901234567890",
                                       "123456789012345678901234567890.12345678901234567890"),)),
    Col("tmtz", "timetz", (("'12:34:56.789+05:30'", "12:34:56.789+05:30"),)),
    # DuckDB's INTERVAL keeps months, days and microseconds apart, as PostgreSQL does
    Col("iv", "interval", (("'1 year 2 mons 3 days 04:05:06.789'",
                            Interval("1 year 2 months 3 days 04:05:06.789", "1 year 2 mons 3 days 04:05:06.789")),
                           ("'-1 days'", Interval("-1 day", "-1 days")),
                           ("'1 mon -1 days -00:00:00.000001'",
                            Interval("1 month -1 day -00:00:00.000001", "1 mon -1 days -00:00:00.000001")),
                           ("'-178000000 years'", Interval("-178000000 years", "-178000000 years")),
                           ("'2562047788:00:54.775807'",
                            Interval("2562047788:00:54.775807", "2562047788:00:54.775807")),
                           ("'00:00:00'", Interval("00:00:00", "00:00:00")))),
    Col("js", "json", (("'{\"b\": 1, \"a\": [1, 2.5, \"x\", null], \"c\": {\"d\": true}}'",
                        Json({"b": 1, "a": [1, 2.5, "x", None], "c": {"d": True}})), ("'[]'", Json([])),
                       ("'\"\"'", Json("")))),
    # rows of differently shaped objects, JSON null and top-level scalars: never one struct of all keys
    Col("jb", "jsonb", (("'{\"k\": [1, {\"n\": null}], \"big\": 12345678901234567890}'",
                         Json({"k": [1, {"n": None}], "big": 12345678901234567890})), ("'{}'", Json({})),
                        ("'{\"n\": null}'", Json({"n": None})), ("'null'", Json(None)), ("'1'", Json(1)),
                        ("'\"s\"'", Json("s")), ("'true'", Json(True)),
                        ("'[{\"a\": 1}, {\"b\": [\"x\", 2]}, 3]'", Json([{"a": 1}, {"b": ["x", 2]}, 3])))),
    Col("ia", "integer[]", (("'{1,2,NULL}'", Json([1, 2, None])), ("'{}'", Json([])))),
    Col("ia2", "integer[][]", (("'{{1,2},{3,NULL}}'", Json([[1, 2], [3, None]])),)),
    Col("jnull", "jsonb", (("NULL", None),)),  # all NULL: still JSON, from the declared type
    Col("ta", "text[]", (("'{\"a\",\"b c\",\"\"}'", Json(["a", "b c", ""])),)),
    Col("en", "mood", (("'happy'", "happy"), ("'sad'", "sad"))),
    # inet as PostgreSQL prints it: host addresses without /32 or /128 (text(inet) would add them)
    Col("ip", "inet", (("'192.168.0.1/24'", "192.168.0.1/24"), ("'::1'", "::1"), ("'10.1.0.1/32'", "10.1.0.1"),
                       ("'2001:db8::1/64'", "2001:db8::1/64"), ("'::ffff:10.0.0.1'", "::ffff:10.0.0.1"))),
    Col("ipa", "inet[]", (("ARRAY['10.1.0.1'::inet, '10.0.0.0/8', NULL]", Json(["10.1.0.1", "10.0.0.0/8", None])),)),
    Col("net", "cidr", (("'10.0.0.0/8'", "10.0.0.0/8"), ("'10.1.0.1/32'", "10.1.0.1/32"),
                        ("'2001:db8::/32'", "2001:db8::/32"))),
    Col("mac", "macaddr", (("'08:00:2b:01:02:03'", "08:00:2b:01:02:03"),)),
    Col("dpos", "positive_int", (("5", 5),)),
    Col("damt", "amount", (("12.34", Decimal("12.34")), ("-0.50", Decimal("-0.50")))),
    Col("dtxt", "label", (("'x'", "x"), ("''", ""))),
    Col("bits", "bit(8)", (("B'10101010'", "10101010"),)),
    Col("rng", "int4range", (("'[1,10)'", "[1,10)"),)),
]

TYPES = [
    "CREATE TYPE mood AS ENUM ('happy', 'sad')",
    "CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0)",
    "CREATE DOMAIN amount AS numeric(10,2)",
    "CREATE DOMAIN label AS text",
]


def test_scalars_on_connectorx(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(pg_url, *create_statements("scalars", SCALARS))
    set_secret(monkeypatch, "src", pg_url)
    result = run_ok("src", [{"table": "scalars"}])
    assert materialization_metadata(result)["scalars"]["backend"] == "connectorx"
    assert mismatches(rows_by_id("src", "scalars"), expected_rows(SCALARS)) == []


def test_every_type_on_pyarrow(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    columns = SCALARS + EXTRAS
    run_sql(pg_url, *TYPES, *create_statements("everything", columns))
    set_secret(monkeypatch, "src", pg_url)
    result = run_ok("src", [{"table": "everything"}])
    assert materialization_metadata(result)["everything"]["backend"] == "pyarrow"
    problems = mismatches(rows_by_id("src", "everything"), expected_rows(columns))
    assert problems == [], "\n".join(problems)
    types = column_types("src", "everything")
    assert types["n_38_10"] == "DECIMAL(38,10)"
    assert types["n_unb"] == "VARCHAR"
    assert types["iv"] == "INTERVAL"
    assert types["js"] == types["jb"] == types["jnull"] == types["ia"] == types["ia2"] == "JSON"
    assert materialization_metadata(result)["everything"]["loader"] == "duckdb direct"
    assert_dlt_path_lands_the_same(monkeypatch, pg_url, "everything", "src")


def test_scalars_forced_to_pyarrow_match_connectorx(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(pg_url, *create_statements("scalars", SCALARS))
    set_secret(monkeypatch, "src", pg_url)
    result = run_ok("src", [{"table": "scalars", "backend": "pyarrow"}])
    assert materialization_metadata(result)["scalars"]["backend"] == "pyarrow"
    assert mismatches(rows_by_id("src", "scalars"), expected_rows(SCALARS)) == []
