"""Deletes reach the warehouse for incremental tables: soft deletes through a flag column, hard deletes
through primary-key reconciliation (full-refresh tables are covered in tests/replication)."""

from __future__ import annotations

import pytest
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets
from oso_dagster.errors import ConfigurationError
from replication.helpers import failure_text, run, set_secret

from reliability.helpers import src, wh

pytestmark = pytest.mark.postgres


def _ok(tables: list[dict]) -> None:
    result = run("dels", tables, retries=0)
    assert result.success, failure_text(result)


def _ids(table: str) -> list[int]:
    return [r[0] for r in wh(f"SELECT id FROM dels.{table} ORDER BY id")]


@pytest.mark.parametrize("flag", ["deleted_at timestamptz", "is_deleted boolean"])
def test_soft_delete_column_removes_flagged_rows(pg_url: str, monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    set_secret(monkeypatch, "dels", pg_url)
    column, kind = flag.split()
    src(pg_url, f"CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL, {flag})")
    deleted = "now()" if kind == "timestamptz" else "true"
    kept = "NULL" if kind == "timestamptz" else "false"
    src(pg_url, f"INSERT INTO t VALUES (1, 1, {kept}), (2, 2, {kept}), (3, 3, {kept}), (4, 4, {deleted})")
    tables = [{"table": "t", "incremental": incremental("seq"), "soft_delete_column": column}]
    _ok(tables)
    assert _ids("t") == [1, 2, 3]  # a row already deleted at first load never lands
    src(pg_url, f"UPDATE t SET {column} = {deleted}, seq = 10 WHERE id = 2")
    src(pg_url, f"INSERT INTO t VALUES (5, 11, {kept})")
    _ok(tables)
    assert _ids("t") == [1, 3, 5]


def test_reconcile_deletes_removes_rows_whose_key_is_gone(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secret(monkeypatch, "dels", pg_url)
    src(pg_url, 'CREATE TABLE "Order Lines" (ord int, line int, seq int NOT NULL, PRIMARY KEY (ord, line))')
    src(pg_url, 'INSERT INTO "Order Lines" SELECT g / 10, g % 10, g FROM generate_series(1, 5000) g')
    plain = [{"table": "Order Lines", "incremental": incremental("seq")}]
    tables = [{**plain[0], "reconcile_deletes": True}]
    _ok(tables)
    src(pg_url, 'DELETE FROM "Order Lines" WHERE ord % 7 = 0')
    src(pg_url, 'INSERT INTO "Order Lines" VALUES (9999, 1, 99999)')
    # without reconciliation the hard deletes are invisible to the cursor
    _ok(plain)
    assert wh("SELECT count(*) FROM dels.order_lines")[0][0] == 5001
    _ok(tables)
    expected = sorted(src(pg_url, 'SELECT ord, line FROM "Order Lines"'))
    assert sorted(wh("SELECT ord, line FROM dels.order_lines")) == expected
    assert len(expected) < 5000


def test_delete_options_are_validated() -> None:
    ref = SecretReference(group_name="v", key="db")
    with pytest.raises(ConfigurationError, match="soft_delete_column needs an incremental"):
        sql_assets("v", ref, [{"table": "t", "soft_delete_column": "deleted_at"}])
    with pytest.raises(ConfigurationError, match="reconcile_deletes must be True or False"):
        sql_assets("v", ref, [{"table": "t", "incremental": incremental("seq"), "reconcile_deletes": "yes"}])
    with pytest.raises(ConfigurationError, match="soft_delete_column must be a column name"):
        sql_assets("v", ref, [{"table": "t", "incremental": incremental("seq"), "soft_delete_column": ""}])


def test_missing_soft_delete_column_names_table(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secret(monkeypatch, "dels", pg_url)
    src(pg_url, "CREATE TABLE t (id int PRIMARY KEY, seq int NOT NULL)")
    result = run("dels", [{"table": "t", "incremental": incremental("seq"), "soft_delete_column": "gone_at"}],
                 retries=0)
    assert not result.success
    assert "soft_delete_column 'gone_at' does not exist" in failure_text(result)
