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
