"""MariaDB type matrix: every value must come back from DuckDB exactly."""

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

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

MAX_TS = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
D65 = "12345678901234567890123456789012345.123456789012345678901234567890"

COLUMNS = [
    Col("t1", "tinyint(1)", (("2", 2), ("-128", -128), ("127", 127), ("0", 0), ("1", 1))),
    Col("tiu", "tinyint unsigned", (("255", 255), ("0", 0))),
    Col("siu", "smallint unsigned", (("65535", 65535),)),
    Col("mi", "mediumint", (("-8388608", -8388608), ("8388607", 8388607))),
    Col("miu", "mediumint unsigned", (("16777215", 16777215),)),
    Col("iu", "int unsigned", (("4294967295", 4294967295),)),
    Col("bi", "bigint", (("-9223372036854775808", -(2**63)), ("9223372036854775807", 2**63 - 1))),
    Col("biu", "bigint unsigned", (("18446744073709551615", Decimal(2**64 - 1)), ("0", Decimal(0)))),
    Col("d_10_2", "decimal(10,2)", (("99999999.99", Decimal("99999999.99")), ("-0.01", Decimal("-0.01")))),
    Col("d_38_10", "decimal(38,10)", (("9999999999999999999999999999.9999999999",
                                       Decimal("9999999999999999999999999999.9999999999")),)),
    Col("d_65_30", "decimal(65,30)", ((D65, D65), ("-1", "-1.000000000000000000000000000000"))),
    # FLOAT is binary32: 0.1 is stored as 0.10000000149011612, and that is the value that must land
    Col("fl", "float", (("1.5", 1.5), ("0.1", 0.10000000149011612),
                        ("3.4028234663852886e38", 3.4028234663852886e38))),
    Col("db", "double", (("1.7976931348623157e308", 1.7976931348623157e308), ("0.1", 0.1),
                         ("2.2250738585072014e-308", 2.2250738585072014e-308))),
    Col("ch", "char(3)", (("'ab'", "ab"), ("''", ""))),
    Col("vc", "varchar(10)", (("''", ""), ("NULL", None), ("'ünï'", "ünï"))),
    Col("tx", "text", (("'😀 \\t'", "😀 \t"), ("''", ""))),
    Col("bn", "binary(4)", (("'ab'", b"ab\x00\x00"),)),
    Col("vb", "varbinary(10)", (("''", b""), ("x'00ff'", b"\x00\xff"), ("NULL", None))),
    Col("bl", "blob", (("''", b""), ("x'deadbeef'", b"\xde\xad\xbe\xef"))),
    Col("d", "date", (("'0001-01-01'", dt.date(1, 1, 1)), ("'9999-12-31'", dt.date(9999, 12, 31)))),
    Col("dtm", "datetime(6)", (("'0001-01-01 00:00:00'", dt.datetime(1, 1, 1)),
                               ("'9999-12-31 23:59:59.999999'", MAX_TS))),
    # TIMESTAMP is an instant (inserted with the session in UTC): it lands as timestamptz
    Col("tsm", "timestamp(6) NULL", (("'1970-01-01 00:00:01'",
                                      dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)),
                                     ("'2038-01-19 03:14:07.999999'",
                                      dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC)))),
    # TIME is a signed duration up to 838 hours: DuckDB's INTERVAL holds it exactly
    Col("tm", "time(6)", (("'838:59:59'", Interval("838:59:59", "838:59:59.000000")),
                          ("'-838:59:59'", Interval("-838:59:59", "-838:59:59.000000")),
                          ("'-12:00:00.5'", Interval("-12:00:00.5", "-12:00:00.500000")),
                          ("'00:00:00'", Interval("00:00:00", "00:00:00.000000")),
                          ("'-00:00:00.000001'", Interval("-00:00:00.000001", "-00:00:00.000001")))),
    Col("yr", "year", (("1901", 1901), ("2155", 2155))),
    Col("js", "json", (("'{\"a\": [1, 2.5, null], \"b\": \"x\"}'", Json({"a": [1, 2.5, None], "b": "x"})),
                       ("'[]'", Json([])), ("'{}'", Json({})), ("'{\"n\": null}'", Json({"n": None})),
                       ("'null'", Json(None)), ("'\"s\"'", Json("s")), ("'1'", Json(1)),
                       ("'[{\"a\": 1}, {\"b\": [true]}]'", Json([{"a": 1}, {"b": [True]}])))),
    Col("jnull", "json", (("NULL", None),)),  # all NULL: still JSON, from the declared type
    Col("en", "enum('a','b','')", (("'b'", "b"), ("''", ""))),
    Col("st", "set('x','y','z')", (("'x,z'", "x,z"), ("''", ""), ("'y'", "y"))),
    Col("b8", "bit(8)", (("b'10101010'", 170), ("b'0'", 0))),
    Col("b64", "bit(64)", (("b'" + "1" * 64 + "'", Decimal(2**64 - 1)),)),
    Col("uu", "uuid", (("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),)),
    Col("ip6", "inet6", (("'::1'", "::1"), ("'::ffff:192.0.2.1'", "::ffff:192.0.2.1"))),
]


def test_every_type(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(mysql_url, "SET time_zone = '+00:00'",
            *create_statements("everything", COLUMNS, " DEFAULT CHARSET=utf8mb4"))
    set_secret(monkeypatch, "src", mysql_url)
    result = run_ok("src", [{"table": "everything"}])
    assert materialization_metadata(result)["everything"]["backend"] == "pyarrow"
    problems = mismatches(rows_by_id("src", "everything"), expected_rows(COLUMNS))
    assert problems == [], "\n".join(problems)
    types = column_types("src", "everything")
    assert types["d_65_30"] == "VARCHAR"
    assert types["d_38_10"] == "DECIMAL(38,10)"
    assert types["tm"] == "INTERVAL"
    assert types["js"] == types["jnull"] == "JSON"  # MariaDB's json is longtext CHECK (json_valid(...))
    assert materialization_metadata(result)["everything"]["loader"] == "duckdb direct"
    assert_dlt_path_lands_the_same(monkeypatch, mysql_url, "everything", "src")


# the columns connectorx reads exactly (type_mapping._mysql_connectorx_exact); a table of only these is read
# with connectorx under backend "auto"
CONNECTORX = ["t1", "tiu", "siu", "mi", "miu", "iu", "bi", "d_10_2", "d_38_10", "d_65_30", "fl", "db", "ch", "vc",
              "tx", "d", "dtm"]


def test_connectorx_reads_plain_tables_exactly(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [c for c in COLUMNS if c.name in CONNECTORX]
    run_sql(mysql_url, *create_statements("plain", columns, " DEFAULT CHARSET=utf8mb4"),
            "SET SESSION sql_mode = ''",
            "CREATE TABLE zeros (id int PRIMARY KEY, d date, dtm datetime(6) NOT NULL)",
            "INSERT INTO zeros VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), (2, '2026-00-05', "
            "'2026-05-00 01:02:03.000004'), (3, '2026-01-05', '2026-01-05 01:02:03.000004'), (4, NULL, "
            "'0000-01-01 00:00:00')")
    set_secret(monkeypatch, "cx", mysql_url)
    meta = materialization_metadata(run_ok("cx", [{"table": "plain"}, {"table": "zeros"}]))
    assert {meta[t]["backend"] for t in ("plain", "zeros")} == {"connectorx"}
    problems = mismatches(rows_by_id("cx", "plain"), expected_rows(columns))
    assert problems == [], "\n".join(problems)
    set_secret(monkeypatch, "pa", mysql_url)
    run_ok("pa", [{"table": "plain", "backend": "pyarrow"}, {"table": "zeros", "backend": "pyarrow"}])
    for table in ("plain", "zeros"):
        assert column_types("cx", table) == column_types("pa", table), table
        assert rows_by_id("cx", table) == rows_by_id("pa", table), table
    assert rows_by_id("cx", "zeros")[3]["d"] == dt.date(2026, 1, 5)
