"""JSON documents, intervals and infinite timestamps into BigQuery (the emulator, or a real project)."""

from __future__ import annotations

import json

import pytest
from conftest import run_sql
from replication.helpers import failure_text, run, run_ok, set_secret
from replication.test_json_values import DOCS, SQL_NULL_ID, _create, _parsed

from bigquery.conftest import BigQueryRun
from bigquery.helpers import column_types, rows_by_id

pytestmark = [pytest.mark.bigquery, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["auto", "sqlalchemy"])
@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_json_lands_as_the_source_text(
    request: pytest.FixtureRequest, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch, backend: str, kind: str
) -> None:
    """Every document as the source's JSON text in a STRING: own keys, JSON null apart from SQL NULL, scalars."""
    url = request.getfixturevalue("pg_url" if kind == "postgres" else "sqlite_url")
    _create(url, kind)
    set_secret(monkeypatch, "src", url)
    run_ok("src", [{"table": "docs", "backend": backend}])
    assert column_types(bq, "src", "docs")["doc"] == "STRING"
    rows = rows_by_id(bq, "src", "docs")
    for i, doc in enumerate(DOCS, start=1):
        landed = rows[i]["doc"]
        assert isinstance(landed, str), f"row {i}: {landed!r}"
        assert _parsed(landed) == _parsed(json.dumps(doc)), f"row {i}: {landed[:200]}"
    assert rows[SQL_NULL_ID]["doc"] is None


@pytest.mark.postgres
def test_infinite_timestamp_fails_naming_the_way_out(
    pg_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BigQuery's TIMESTAMP holds no infinity: the run fails naming the column and the columns option, which
    then lands it as text."""
    run_sql(pg_url, "CREATE TABLE spans (id int PRIMARY KEY, valid_to timestamp)",
            "INSERT INTO spans VALUES (1, '2024-01-01'), (2, 'infinity')")
    set_secret(monkeypatch, "src", pg_url)
    result = run("src", [{"table": "spans"}], retries=0)
    assert not result.success
    text = failure_text(result)
    assert "Table 'spans', column 'valid_to'" in text and "holds 'infinity'" in text, text[:2000]
    assert '"columns": {"valid_to": "text"}' in text
    run_ok("src", [{"table": "spans", "columns": {"valid_to": "text"}}])
    assert column_types(bq, "src", "spans")["valid_to"] == "STRING"
    assert {i: r["valid_to"] for i, r in rows_by_id(bq, "src", "spans").items()} == {
        1: "2024-01-01 00:00:00", 2: "infinity"}


@pytest.mark.mariadb
def test_mariadb_json_and_time_land_as_their_text(
    mysql_url: str, bq: BigQueryRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB's json (longtext with a json_valid check) and TIME (a duration) as STRING holding the source text."""
    from replication.matrix import create_statements, expected_rows
    from replication.test_types_mariadb import COLUMNS

    from bigquery.helpers import mismatches

    columns = [c for c in COLUMNS if c.name in ("js", "jnull", "tm")]
    run_sql(mysql_url, *create_statements("shapes", columns, " DEFAULT CHARSET=utf8mb4"))
    set_secret(monkeypatch, "my", mysql_url)
    run_ok("my", [{"table": "shapes"}])
    assert {k: v for k, v in column_types(bq, "my", "shapes").items() if not k.startswith("_dlt")} == {
        "id": "INTEGER", "js": "STRING", "jnull": "STRING", "tm": "STRING"}
    problems = mismatches(rows_by_id(bq, "my", "shapes"), expected_rows(columns))
    assert problems == [], "\n".join(problems)
