"""Scaffolds that fit real schemas: partitions read through their parent, cursors with evidence, views, choosing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_sql
from oso_dagster.scaffold.catalog import assigned_new_columns
from oso_dagster.scaffold.introspect import VIEW_REASON, introspect

from .helpers import assets_entries, bake, check_generated, ok
from .pagila import create_mariadb, create_postgres


@pytest.mark.postgres
def test_postgres_partitions_children_and_trigger_cursors(pg_url: str) -> None:
    create_postgres(pg_url)
    progress: list[str] = []
    result = introspect(pg_url, progress=progress.append)
    tables = {t.name: t for t in result.tables}
    assert sorted(tables) == ["actor", "city_log", "film", "language", "payment", "store"]
    left_out = next(line for line in progress if line.startswith("Left out"))
    assert "payment_p2022_01 (partition of payment)" in left_out and "payment_p2022_07" in left_out
    assert "city_log_2020 (inheritance child of city_log)" in left_out

    assert tables["actor"].cursor == "last_update"
    assert "BEFORE UPDATE trigger last_updated (function last_updated assigns NEW.last_update)" in (
        tables["actor"].cursor_reason)
    assert tables["payment"].cursor == "last_update" and tables["payment"].primary_key == ["payment_date",
                                                                                            "payment_id"]
    assert "trigger last_updated" in tables["payment"].cursor_reason
    assert tables["store"].cursor == "Touched" and "trigger touch" in tables["store"].cursor_reason
    assert tables["film"].cursor == "modified" and "named like an update time" in tables["film"].cursor_reason
    assert tables["language"].cursor is None
    assert "passed over: changed_at (nullable" in tables["language"].cursor_reason

    with_views = introspect(pg_url, include_views=True, exclude=["c*", "f?lm"])
    names = [t.name for t in with_views.tables]
    assert names == ["actor", "language", "payment", "store", "v_actor"]
    view = with_views.tables[-1]
    assert view.view and view.cursor is None and view.cursor_reason == VIEW_REASON and view.primary_key == []


@pytest.mark.postgres
def test_partitioned_scaffold_has_one_payment_model(tmp_path: Path, pg_url: str) -> None:
    create_postgres(pg_url)
    result = ok(bake(tmp_path, "shop", "--database-url", pg_url))
    generated = check_generated(tmp_path / "oso-source-shop")
    models = sorted(p for p in generated if p.endswith(".sql"))
    assert [m for m in models if "payment" in m] == ["src/oso_source_shop/dbt/models/staging/stg_shop__payment.sql"]
    assert "payment: incremental on 'last_update' (NOT NULL timestamp, an update time set by BEFORE UPDATE " \
           "trigger last_updated" in result.stdout
    assert "partition of payment" in result.stderr


@pytest.mark.mariadb
def test_mariadb_on_update_cursor_and_view(tmp_path: Path, mysql_url: str) -> None:
    create_mariadb(mysql_url)
    tables = {t.name: t for t in introspect(mysql_url, include_views=True).tables}
    assert tables["customer"].cursor == "last_update"
    assert "declared on update current_timestamp" in tables["customer"].cursor_reason.lower()
    assert tables["rental"].cursor == "stamp"  # ON UPDATE beats a column only named updated_at
    assert tables["v_customer"].view and tables["v_customer"].cursor is None

    # a view named with --table, given a key and a cursor
    result = ok(bake(tmp_path, "rent", "--database-url", mysql_url, "--table", "v_customer", "--table",
                     "customer", "--primary-key", "v_customer=customer_id", "--incremental",
                     "v_customer=last_update"))
    assert "v_customer: view, incremental on 'last_update', key customer_id" in result.stdout
    assert assets_entries(tmp_path / "oso-source-rent", "rent") == [
        '{"table": "v_customer", "incremental": incremental("last_update"), "primary_key": ["customer_id"]}',
        '{"table": "customer", "incremental": incremental("last_update")}',
    ]


def test_view_without_key_stays_full_refresh_and_says_so(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE orders (id integer PRIMARY KEY, updated_at timestamp NOT NULL)",
            "CREATE VIEW v_orders AS SELECT id, updated_at FROM orders")
    result = ok(bake(tmp_path, "lite", "--database-url", sqlite_url, "--table", "v_orders"))
    assert "v_orders: view, full refresh (a view has no primary key" in result.stdout
    assert "Views are read in full on every run" in result.stdout
    assert assets_entries(tmp_path / "oso-source-lite", "lite") == ['{"table": "v_orders"}']
    refused = bake(tmp_path / "x", "lite", "--database-url", sqlite_url, "--table", "v_orders",
                   "--incremental", "v_orders=updated_at")
    assert refused.exit_code != 0 and "is a view" in refused.stderr and "--primary-key v_orders=" in refused.stderr
    # not offered without --include-views
    listed = ok(bake(tmp_path / "y", "lite", "--database-url", sqlite_url))
    assert "v_orders" not in listed.stdout


def test_interactive_choice_filters_and_changes_cursors(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url,
            "CREATE TABLE events (id integer PRIMARY KEY, seq integer NOT NULL, updated_at timestamp NOT NULL)",
            "CREATE TABLE tmp_a (id integer PRIMARY KEY)", "CREATE TABLE tmp_b (id integer PRIMARY KEY)",
            "CREATE TABLE users (id integer PRIMARY KEY, created_at timestamp NOT NULL)")
    answers = ["crm", "", "", sqlite_url, "",   # name, secret group, secret key, URL, schema
               "tmp_*", "+tmp_b", "",           # leave out tmp_*, add tmp_b back, keep
               "n",                             # change cursors:
               "nope", "seq",                   # events: an unknown column is refused, then seq
               "-",                             # tmp_b: stays full refresh
               "-"]                             # users: full refresh instead of created_at
    from click.testing import CliRunner
    from oso_dagster.cli.new_source import new_source

    result = CliRunner().invoke(new_source, ["--output-dir", str(tmp_path)], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "4 of 4 table(s) selected" in result.output and "2 of 4 table(s) selected" in result.output
    assert "has no column 'nope'" in result.output
    assert assets_entries(tmp_path / "oso-source-crm", "crm") == [
        '{"table": "events", "incremental": incremental("seq")}', '{"table": "tmp_b"}', '{"table": "users"}']


def test_missing_name_without_input_is_refused(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from oso_dagster.cli.new_source import new_source

    result = CliRunner().invoke(new_source, ["--no-input", "--table", "t", "--output-dir", str(tmp_path)])
    assert result.exit_code != 0 and "Missing NAME" in result.stderr and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_assigned_new_columns() -> None:
    body = ('BEGIN NEW.last_update = now(); new."Mixed Case" := now(); IF NEW.status = 1 THEN\n'
            '  NEW.flag := true; END IF; RETURN NEW; END')
    assert assigned_new_columns(body) == ["last_update", "Mixed Case", "flag"]  # not the comparison
