"""``oso-new-source --update``: new tables and columns arrive, hand edits stay, a conflict stops cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_sql
from oso_dagster.cli.new_source import new_source

from .helpers import assets_entries, check_generated, files, load_yaml, ok

STAGING = "src/oso_source_shop/dbt/models/staging"


def update(project: Path, url: str, *args: str):
    return CliRunner().invoke(new_source, ["--update", str(project), "--database-url", url, "--no-input", *args])


@pytest.fixture
def edited(tmp_path: Path, pg_url: str) -> Path:
    """A package scaffolded from two tables, then edited by hand in assets.py, a model, the YAML and README."""
    run_sql(pg_url,
            "CREATE TABLE orders (id int PRIMARY KEY, total numeric(8,2), updated_at timestamp NOT NULL)",
            "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, created_at timestamp NOT NULL)")
    ok(CliRunner().invoke(new_source, ["shop", "--database-url", pg_url, "--output-dir", str(tmp_path),
                                       "--no-input"]))
    project = tmp_path / "oso-source-shop"
    assets = project / "src/oso_source_shop/assets.py"
    text = assets.read_text(encoding="utf-8")
    text = text.replace('{"table": "customers", "incremental": incremental("created_at")}',
                        '{"table": "customers", "incremental": incremental("created_at"), "chunk_size": 5000}')
    assets.write_text(text, encoding="utf-8")
    model = project / STAGING / "stg_shop__orders.sql"
    model.write_text(model.read_text(encoding="utf-8").replace("        total,\n",
                                                               "        total as order_total,\n"),
                     encoding="utf-8")
    readme = project / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOwned by the shop team.\n", encoding="utf-8")
    (project / "NOTES.md").write_text("mine", encoding="utf-8")
    return project


@pytest.mark.postgres
def test_update_adds_table_and_column_and_keeps_edits(edited: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE refunds (id int PRIMARY KEY, amount numeric(8,2), last_update timestamp NOT NULL)",
            "ALTER TABLE customers ADD COLUMN phone text",
            "ALTER TABLE customers DROP COLUMN email")
    result = ok(update(edited, pg_url))
    assert "New tables: refunds" in result.stdout
    assert "New columns in stg_shop__customers: phone" in result.stdout
    assert "Columns gone from stg_shop__customers: email" in result.stdout
    assert "pip install --force-reinstall --no-deps" in result.stdout
    check_generated(edited)
    assert assets_entries(edited, "shop") == [
        '{"table": "customers", "incremental": incremental("created_at"), "chunk_size": 5000}',  # edit kept
        '{"table": "orders", "incremental": incremental("updated_at")}',
        '{"table": "refunds", "incremental": incremental("last_update")}',
    ]
    orders = (edited / STAGING / "stg_shop__orders.sql").read_text(encoding="utf-8")
    assert "total as order_total," in orders
    customers = (edited / STAGING / "stg_shop__customers.sql").read_text(encoding="utf-8")
    assert "phone" in customers and "email" not in customers
    assert (edited / STAGING / "stg_shop__refunds.sql").is_file()
    models = {m["name"]: m for m in load_yaml(edited, "shop", "models")["models"]}
    assert [c["name"] for c in models["stg_shop__refunds"]["columns"]] == ["id", "amount", "last_update"]
    assert "refunds" in [t["name"] for t in load_yaml(edited, "shop", "sources")["sources"][0]["tables"]]
    assert (edited / "README.md").read_text(encoding="utf-8").endswith("Owned by the shop team.\n")
    assert "| refunds |" in (edited / "README.md").read_text(encoding="utf-8")
    assert (edited / "NOTES.md").read_text(encoding="utf-8") == "mine"
    answers = json.loads((edited / ".oso-source.json").read_text(encoding="utf-8"))
    assert [t["table"] for t in answers["tables"]] == ["customers", "orders", "refunds"]
    assert "template_version" in answers and "postgresql" not in json.dumps(answers)

    # a second update with nothing new changes nothing
    before = files(edited)
    ok(update(edited, pg_url))
    assert files(edited) == before


@pytest.mark.postgres
def test_update_conflict_stops_and_writes_nothing(edited: Path, pg_url: str) -> None:
    # the user edited the line right where the new column lands, and the table changes under it
    model = edited / STAGING / "stg_shop__customers.sql"
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("        created_at\n", "        created_at as signed_up_at\n"), encoding="utf-8")
    run_sql(pg_url, "ALTER TABLE customers ADD COLUMN phone text",
            "CREATE TABLE refunds (id int PRIMARY KEY)")
    before = {p: p.read_bytes() for p in edited.rglob("*") if p.is_file()}
    result = update(edited, pg_url)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Nothing was written" in result.stderr
    assert f"{STAGING}/stg_shop__customers.sql: lines" in result.stderr
    after = {p: p.read_bytes() for p in edited.rglob("*") if p.is_file()}
    assert after == before


def test_update_refuses_a_folder_without_answers(tmp_path: Path, sqlite_url: str) -> None:
    result = CliRunner().invoke(new_source, ["--update", str(tmp_path), "--database-url", sqlite_url, "--no-input"])
    assert result.exit_code != 0 and ".oso-source.json does not exist" in result.stderr


def _package(tmp_path: Path, url: str, *args: str) -> Path:
    ok(CliRunner().invoke(new_source, ["shop", "--database-url", url, "--output-dir", str(tmp_path / "out"),
                                       "--no-input", *args]))
    return tmp_path / "out" / "oso-source-shop"


def _answers(project: Path) -> dict:
    return json.loads((project / ".oso-source.json").read_text(encoding="utf-8"))


def test_tables_left_out_in_the_picker_stay_out_on_update(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)", "CREATE TABLE tmp_a (id integer PRIMARY KEY)",
            'CREATE TABLE "tmp*x" (id integer PRIMARY KEY)')
    answers = ["shop", "", "", sqlite_url, "",  # name, secret group, secret key, URL, schema
               "tmp*", "",                      # leave out tmp_a and tmp*x, keep
               ""]                              # accept the cursors
    result = CliRunner().invoke(new_source, ["--output-dir", str(tmp_path)], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    project = tmp_path / "oso-source-shop"
    # exact names, escaped: the pattern typed would also leave out tables created later
    assert _answers(project)["exclude"] == ["tmp[*]x", "tmp_a"]
    run_sql(sqlite_url, "CREATE TABLE tmpyx (id integer PRIMARY KEY)")
    ok(update(project, sqlite_url))
    assert assets_entries(project, "shop") == ['{"table": "events"}', '{"table": "tmpyx"}']
    # named with --table, a table left out in the picker comes back (and stays)
    ok(update(project, sqlite_url, "--table", "tmp_a"))
    assert [t["table"] for t in _answers(project)["tables"]] == ["events", "tmp_a", "tmpyx"]
    assert _answers(project)["exclude"] == ["tmp[*]x"]


def test_an_edited_model_of_a_gone_table_stops_the_update(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)", "CREATE TABLE users (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url)
    model = project / STAGING / "stg_shop__users.sql"
    model.write_text(model.read_text(encoding="utf-8") + "-- checked with finance\n", encoding="utf-8")
    unedited = project / STAGING / "stg_shop__events.sql"
    run_sql(sqlite_url, "DROP TABLE users")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    result = update(project, sqlite_url)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Nothing was written" in result.stderr
    assert f"{STAGING}/stg_shop__users.sql: edited by hand" in result.stderr
    assert "delete it or move it out of the package" in result.stderr
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before

    model.unlink()  # as the message says
    result = ok(update(project, sqlite_url))
    assert "Gone from the database: users" in result.stdout
    assert unedited.is_file() and not model.exists()
    check_generated(project)


def test_update_refuses_options_it_would_ignore(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url)
    before = files(project)
    for args in (["--schema", "main"], ["--force"], ["--include-views"], ["--secret-group", "x"],
                 ["--output-dir", str(tmp_path)], ["--secret-key", "k"]):
        result = update(project, sqlite_url, *args)
        assert result.exit_code != 0 and "Traceback" not in result.output, args
        assert f"drop {args[0]}" in result.stderr and ".oso-source.json" in result.stderr, result.stderr
    assert files(project) == before


def test_update_adds_a_named_table_to_a_package_made_with_table(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)", "CREATE TABLE other (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url, "--table", "events")
    run_sql(sqlite_url, "CREATE TABLE refunds (id integer PRIMARY KEY, updated_at timestamp NOT NULL)")
    missing = update(project, sqlite_url, "--table", "refundz")
    assert missing.exit_code != 0 and "--table refundz: not found" in missing.stderr
    result = ok(update(project, sqlite_url, "--table", "refunds", "--incremental", "refunds=updated_at"))
    assert "New tables: refunds" in result.stdout
    entries = ['{"table": "events"}', '{"table": "refunds", "incremental": incremental("updated_at")}']
    assert assets_entries(project, "shop") == entries
    assert (project / STAGING / "stg_shop__refunds.sql").is_file()
    assert _answers(project)["all_tables"] is False
    ok(update(project, sqlite_url))  # recorded: kept, and 'other' is still not taken
    assert assets_entries(project, "shop") == entries
    check_generated(project)


def test_update_adds_a_view_with_its_key_to_an_all_tables_package(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY, updated_at timestamp NOT NULL)")
    project = _package(tmp_path, sqlite_url)
    run_sql(sqlite_url, "CREATE VIEW v_events AS SELECT id, updated_at FROM events")
    ok(update(project, sqlite_url, "--table", "v_events", "--primary-key", "v_events=id",
              "--incremental", "v_events=updated_at"))
    view = '{"table": "v_events", "incremental": incremental("updated_at"), "primary_key": ["id"]}'
    assert view in assets_entries(project, "shop")
    ok(update(project, sqlite_url))  # a view is not in the all-tables listing, but it is recorded: kept
    assert view in assets_entries(project, "shop")


def test_update_when_every_table_is_gone(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url, "--table", "events")
    run_sql(sqlite_url, "DROP TABLE events")
    result = update(project, sqlite_url)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "None of shop's tables (events) is in the database any more" in result.stderr
    assert "pass --table NAME" not in result.stderr


@pytest.mark.parametrize(("edit", "named"), [
    (lambda a: a.pop("source_name"), "'source_name'"),
    (lambda a: a.pop("secret_group"), "'secret_group'"),
    (lambda a: a["tables"].append({"incremental": None}), "'tables'"),
    (lambda a: a.update(tables="events"), "'tables'"),
])
def test_update_names_what_is_missing_from_the_answers(tmp_path: Path, sqlite_url: str, edit, named: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url)
    answers = _answers(project)
    edit(answers)
    (project / ".oso-source.json").write_text(json.dumps(answers), encoding="utf-8")
    result = update(project, sqlite_url)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert named in result.stderr and ".oso-source.json" in result.stderr


def test_a_kept_cursor_dropped_says_why() -> None:
    from oso_dagster.cli.update_source import _keep_recorded
    from oso_dagster.scaffold.answers import ColumnSpec, TableSpec

    def table(key: list[str]) -> TableSpec:
        return TableSpec("orders", cursor=None, primary_key=key, columns=[ColumnSpec("id"), ColumnSpec("seq")])

    lost_pk = _keep_recorded(table([]), {"table": "orders", "incremental": "seq"})
    assert lost_pk.cursor is None and "no primary key any more" in (lost_pk.cursor_reason or "")
    lost_key = _keep_recorded(table([]), {"table": "orders", "incremental": "seq", "primary_key": ["code"]})
    assert lost_key.cursor is None and "primary key column(s) 'code' are gone" in (lost_key.cursor_reason or "")
    gone = _keep_recorded(table(["id"]), {"table": "orders", "incremental": "stamp"})
    assert "recorded cursor 'stamp' is gone" in (gone.cursor_reason or "")
    kept = _keep_recorded(table(["id"]), {"table": "orders", "incremental": "seq"})
    assert kept.cursor == "seq"


def test_update_exclude_leaves_tables_out_and_is_recorded(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)", "CREATE TABLE tmp_old (id integer PRIMARY KEY)")
    project = _package(tmp_path, sqlite_url)
    result = ok(update(project, sqlite_url, "--exclude", "tmp_*"))
    assert "Left out by --exclude: tmp_old" in result.stdout and "Gone from the database" not in result.stdout
    assert not (project / STAGING / "stg_shop__tmp_old.sql").exists()
    assert _answers(project)["exclude"] == ["tmp_*"]
    run_sql(sqlite_url, "CREATE TABLE tmp_new (id integer PRIMARY KEY)")
    ok(update(project, sqlite_url))
    assert assets_entries(project, "shop") == ['{"table": "events"}']
