"""SQLite type matrix: every value must come back from DuckDB exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from conftest import run_sql

from replication.helpers import assert_dlt_path_lands_the_same, column_types, rows_by_id, run_ok, set_secret
from replication.matrix import Col, Json, create_statements, expected_rows, mismatches

pytestmark = pytest.mark.slow

COLUMNS = [
    Col("i", "INTEGER", (("-9223372036854775808", -(2**63)), ("9223372036854775807", 2**63 - 1), ("0", 0))),
    Col("r", "REAL", (("9e999", float("inf")), ("-9e999", float("-inf")), ("0.1", 0.1),
                      ("1.7976931348623157e308", 1.7976931348623157e308), ("5e-324", 5e-324))),
    Col("n", "NUMERIC(10,2)", (("12.34", Decimal("12.34")), ("-0.5", Decimal("-0.50")))),
    Col("dec", "DECIMAL(38,10)", (("12345.0123456789", Decimal("12345.0123456789")),)),
    Col("t", "TEXT", (("''", ""), ("NULL", None), ("'üñí 😀'", "üñí 😀"))),
    Col("vc", "VARCHAR(5)", (("'longer than five'", "longer than five"),)),
    Col("b", "BLOB", (("x''", b""), ("x'00ff'", b"\x00\xff"))),
    Col("bo", "BOOLEAN", (("1", True), ("0", False))),
    Col("d", "DATE", (("'0001-01-01'", dt.date(1, 1, 1)), ("'9999-12-31'", dt.date(9999, 12, 31)))),
    Col("dt", "DATETIME", (("'0001-01-01 00:00:00.000000'", dt.datetime(1, 1, 1)),
                           ("'9999-12-31 23:59:59.999999'", dt.datetime(9999, 12, 31, 23, 59, 59, 999999)))),
    Col("tm", "TIME", (("'23:59:59.999999'", dt.time(23, 59, 59, 999999)),)),
    Col("js", "JSON", (("'{\"a\": [1, null, \"x\"]}'", Json({"a": [1, None, "x"]})), ("'{}'", Json({})),
                       ("'{\"n\": null}'", Json({"n": None})), ("'null'", Json(None)), ("'\"s\"'", Json("s")),
                       ("1", Json(1)), ("'[{\"a\": 1}, {\"b\": [true]}]'", Json([{"a": 1}, {"b": [True]}])))),
    Col("jnull", "JSON", (("NULL", None),)),  # all NULL: still JSON, from the declared type
    Col("untyped", "", (("42", "42"), ("'text'", "text"))),
]


def test_every_type(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(sqlite_url, *create_statements("everything", COLUMNS))
    set_secret(monkeypatch, "src", sqlite_url)
    run_ok("src", [{"table": "everything"}])
    problems = mismatches(rows_by_id("src", "everything"), expected_rows(COLUMNS))
    assert problems == [], "\n".join(problems)
    assert column_types("src", "everything")["js"] == column_types("src", "everything")["jnull"] == "JSON"
    assert_dlt_path_lands_the_same(monkeypatch, sqlite_url, "everything", "src")
