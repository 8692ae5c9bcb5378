"""A generated source package, replicated and staged by dbt-bigquery through the real Dagster CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from code_location.helpers import env_with, install, materialize, scaffold
from conftest import run_sql

from bigquery.conftest import BigQueryRun

pytestmark = [pytest.mark.bigquery, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def package(tmp_path: Path, pg_url: str) -> dict[str, object]:
    run_sql(
        pg_url,
        "CREATE TABLE events (id serial PRIMARY KEY, kind text NOT NULL, amount numeric(38,10), doc jsonb, "
        "updated_at timestamp NOT NULL DEFAULT '2024-01-01 00:00:00')",
        "INSERT INTO events (kind, amount, doc) SELECT 'k' || i, i / 3.0, jsonb_build_object('i', i) "
        "FROM generate_series(1, 50) AS i",
        'CREATE TABLE "Accounts" ("AccountId" int PRIMARY KEY, "Display Name" text)',
        "INSERT INTO \"Accounts\" VALUES (1, 'a'), (2, 'b')",
    )
    site = tmp_path / "site"
    site.mkdir()
    install(scaffold("pgsrc", pg_url, tmp_path / "out"), site)
    return {"site": site, "cwd": tmp_path, "secrets": {"DAGSTER__PGSRC__DB_CONNECTION_STRING": pg_url}}


def test_materialize_replicates_and_builds_staging_views(
    package: dict[str, object], bq: BigQueryRun, tmp_path: Path, pg_url: str
) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = env_with(package["site"], **package["secrets"], **bq.env, DAGSTER_HOME=str(dagster_home))
    result = materialize(env, package["cwd"])
    output = (result.stdout + result.stderr)[-8000:]
    assert result.returncode == 0, output
    assert "pg_url" not in output and pg_url not in output

    staging = bq.dataset("staging")
    assert bq.rows(f"SELECT count(*) AS n FROM `{bq.dataset('pgsrc')}.events`")[0]["n"] == 50
    views = {t.table_id: t.table_type for t in bq.client.list_tables(staging)}
    assert views.get("stg_pgsrc__events") == "VIEW", views
    rows = bq.rows(f"SELECT * FROM `{staging}.stg_pgsrc__events` ORDER BY id")
    assert len(rows) == 50
    assert rows[2]["kind"] == "k3" and rows[2]["amount"] == 1
    assert rows[0]["updated_at"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    accounts = bq.rows(f"SELECT * FROM `{staging}.stg_pgsrc__accounts` ORDER BY account_id")
    assert [a["display_name"] for a in accounts] == ["a", "b"]

    # Through the guard, a model whose SQL the warehouse rejects fails the run.
    model = next(Path(str(package["site"])).rglob("stg_pgsrc__accounts.sql"))
    model.write_text("select no_such_column from {{ source('pgsrc', 'accounts') }}\n")
    broken = materialize(env, package["cwd"], select="stg_pgsrc__accounts")
    assert broken.returncode != 0, (broken.stdout + broken.stderr)[-4000:]
    assert "no_such_column" in broken.stdout + broken.stderr
