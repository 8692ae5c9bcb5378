"""Introspection against real PostgreSQL, MariaDB and SQLite: tables, keys, columns and cursor choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_sql
from oso_dagster.scaffold.introspect import choose_cursor, introspect

from .helpers import assets_entries, bake, check_generated, load_yaml, ok


@pytest.mark.postgres
def test_postgres_mixed_case_no_pk_and_schema(tmp_path: Path, pg_url: str) -> None:
    run_sql(
        pg_url,
        'CREATE TABLE "OrderItems" ("Id" int PRIMARY KEY, "Select" text, "UpdatedAt" timestamptz NOT NULL)',
        'CREATE INDEX ON "OrderItems" ("UpdatedAt")',
        "CREATE TABLE logs (line text, created_at timestamp NOT NULL)",
        "CREATE TABLE events (id bigint, seq int, created_at timestamp NOT NULL, updated_at timestamp NOT NULL,"
        " PRIMARY KEY (id, seq))",
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.orders (order_id int PRIMARY KEY, modified_at timestamp, created_at timestamp NOT NULL)",
    )
    result = ok(bake(tmp_path, "pgdb", "--database-url", pg_url))
    assert "Reflected 3 table(s)" in result.stderr and "[3/3]" in result.stderr
    assert "incremental on 'UpdatedAt'" in result.stdout and "logs: full refresh (no primary key" in result.stdout
    project = tmp_path / "oso-source-pgdb"
    generated = check_generated(project)
    assert assets_entries(project, "pgdb") == [
        '{"table": "OrderItems", "incremental": incremental("UpdatedAt")}',
        '{"table": "events", "incremental": incremental("updated_at")}',
        '{"table": "logs"}',
    ]
    staging = "src/oso_source_pgdb/dbt/models/staging"
    sql = generated[f"{staging}/stg_pgdb__order_items.sql"]
    assert "        id,\n        {{ adapter.quote('select') }},\n        updated_at\n" in sql
    models = {m["name"]: m for m in load_yaml(project, "pgdb", "models")["models"]}
    order_items = {c["name"]: c for c in models["stg_pgdb__order_items"]["columns"]}
    assert order_items["id"]["data_tests"] == ["unique", "not_null"]
    assert order_items["select"]["quote"] is True and "data_tests" not in order_items["select"]
    events = {c["name"]: c for c in models["stg_pgdb__events"]["columns"]}
    assert events["id"]["data_tests"] == ["not_null"] and events["seq"]["data_tests"] == ["not_null"]
    assert "data_tests" not in {c["name"]: c for c in models["stg_pgdb__logs"]["columns"]}["line"]
    assert json.loads(generated[".oso-source.json"])["introspected"] is True

    # a non-default schema, narrowed to one table; the schema lands in each entry
    ok(bake(tmp_path / "s", "sales", "--database-url", pg_url, "--schema", "sales", "--table", "orders"))
    project = tmp_path / "s" / "oso-source-sales"
    check_generated(project)
    # modified_at is nullable, so the NOT NULL insert time wins
    assert assets_entries(project, "sales") == [
        '{"table": "orders", "schema": "sales", "incremental": incremental("created_at")}']

    # the default schema named explicitly is not written
    ok(bake(tmp_path / "p", "pub", "--database-url", pg_url, "--schema", "public", "--table", "logs"))
    assert assets_entries(tmp_path / "p" / "oso-source-pub", "pub") == ['{"table": "logs"}']


@pytest.mark.postgres
def test_password_never_written_or_shown(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE t (id int PRIMARY KEY)")
    url = sa.engine.make_url(pg_url).set(password="hunter2-Secret").render_as_string(hide_password=False)
    result = ok(bake(tmp_path, "pw", "--database-url", url))  # trust auth ignores the password
    assert "hunter2" not in result.output and "postgres:***@" in result.stderr
    for path in (tmp_path / "oso-source-pw").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert "hunter2" not in text and "127.0.0.1" not in text, path


@pytest.mark.mariadb
def test_mariadb(tmp_path: Path, mysql_url: str) -> None:
    run_sql(
        mysql_url,
        "CREATE TABLE customers (id int PRIMARY KEY, `Last Modified` datetime NOT NULL, created_at datetime NOT NULL,"
        " INDEX (created_at))",
        "CREATE TABLE `order` (id int PRIMARY KEY, `desc` text, event_time timestamp NOT NULL DEFAULT"
        " CURRENT_TIMESTAMP)",
    )
    ok(bake(tmp_path, "maria", "--database-url", mysql_url))
    project = tmp_path / "oso-source-maria"
    generated = check_generated(project)
    # tier 1 (an update time) beats an indexed tier 2 column
    assert assets_entries(project, "maria") == [
        '{"table": "customers", "incremental": incremental("Last Modified")}',
        '{"table": "order", "incremental": incremental("event_time")}',
    ]
    (source,) = load_yaml(project, "maria", "sources")["sources"]
    order = next(t for t in source["tables"] if t["name"] == "order")
    assert order["quoting"] == {"identifier": True}
    assert "{{ adapter.quote('desc') }}" in generated["src/oso_source_maria/dbt/models/staging/stg_maria__order.sql"]


def test_sqlite_cursor_choice(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(
        sqlite_url,
        "CREATE TABLE a (id integer PRIMARY KEY, updated_at timestamp NOT NULL, modified_at timestamp NOT NULL)",
        "CREATE INDEX ix_a ON a (modified_at)",
        "CREATE TABLE b (id integer PRIMARY KEY, updated_at text NOT NULL, created text)",
        "CREATE TABLE c (id integer PRIMARY KEY, created_at datetime NOT NULL, time timestamp NOT NULL)",
        "CREATE TABLE d (k text, updated_at timestamp NOT NULL)",
    )
    progress: list[str] = []
    result = introspect(sqlite_url, progress=progress.append)
    chosen = {t.name: (t.cursor, t.cursor_reason) for t in result.tables}
    assert chosen["a"][0] == "modified_at" and "indexed" in chosen["a"][1]  # indexed first, within a tier
    assert chosen["b"][0] is None  # text is not a timestamp
    assert chosen["c"][0] == "created_at" and "insert time" in chosen["c"][1]
    assert chosen["d"] == (None, "no primary key, so changed rows could not be merged")
    assert any("[4/4]" in line for line in progress)
    assert [t.primary_key for t in result.tables] == [["id"], ["id"], ["id"], []]

    engine = sa.create_engine(sqlite_url)
    table = sa.Table("a", sa.MetaData(), autoload_with=engine)
    assert choose_cursor(table)[0] == "modified_at"
    engine.dispose()


def test_incremental_override(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY, seq integer NOT NULL,"
                        " updated_at timestamp NOT NULL)")
    result = ok(bake(tmp_path, "lite", "--database-url", sqlite_url, "--incremental", "events=seq"))
    assert "incremental on 'seq' (chosen with --incremental)" in result.stdout
    assert assets_entries(tmp_path / "oso-source-lite", "lite") == [
        '{"table": "events", "incremental": incremental("seq")}']
