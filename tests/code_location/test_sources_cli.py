"""`oso-sources list/check` against real PostgreSQL and MariaDB, with their warnings and exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_sql

from code_location.helpers import BIN, env_with, install, write_package

ASSETS = """
from dlt.sources import incremental
from oso_dagster.factories.sql import sql_assets
from oso_dagster.utils.secrets import SecretReference
src = sql_assets("{name}", SecretReference(group_name="{name}", key="db"), [
    {{"table": "events", "incremental": incremental("updated_at")}},
    {{"table": "{second}"}},
])
"""


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "oso-sources"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)


def _site(tmp_path: Path, name: str, second: str) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    pkg = write_package(tmp_path, f"oso-source-{name}", f"oso_source_{name}", name,
                        ASSETS.format(name=name, second=second))
    install(pkg, site)
    return site


def test_list_shows_tables_cursors_and_versions(tmp_path: Path) -> None:
    site = _site(tmp_path, "shop", "users")
    result = _cli(env_with(site), tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert "shop" in result.stdout and "oso-source-shop 0.0.1" in result.stdout
    assert "incremental on 'updated_at'" in result.stdout and "full refresh" in result.stdout



def test_source_packages_setting_serves_only_the_named_packages(tmp_path: Path) -> None:
    site = _site(tmp_path, "shop", "users")
    install(write_package(tmp_path, "oso-source-crm", "oso_source_crm", "crm", ASSETS.format(name="crm",
                                                                                                second="leads")), site)
    both = _cli(env_with(site), tmp_path, "list")
    assert both.returncode == 0 and "oso-source-shop" in both.stdout and "oso-source-crm" in both.stdout, both
    only = _cli(env_with(site, OSO_SOURCE_PACKAGES="OSO_Source_Shop"), tmp_path, "list")
    assert only.returncode == 0 and "oso-source-shop" in only.stdout and "crm" not in only.stdout, only
    typo = _cli(env_with(site, OSO_SOURCE_PACKAGES="oso-source-shop,oso-source-shopp"), tmp_path, "list")
    assert typo.returncode != 0 and "Traceback" not in typo.stderr, typo
    assert "OSO_SOURCE_PACKAGES names oso-source-shopp, which is not an installed source package" in typo.stderr
    installed = typo.stderr.split("(installed: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"oso-source-crm", "oso-source-shop"} <= set(installed), typo.stderr

@pytest.mark.postgres
def test_check_postgres_warns_on_unindexed_cursor_and_writable_user(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamp NOT NULL)",
            "CREATE TABLE users (id int PRIMARY KEY)")
    site = _site(tmp_path, "shop", "users")
    result = _cli(env_with(site, DAGSTER__SHOP__DB=pg_url), tmp_path, "check", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN events: cursor column 'updated_at' has no index" in result.stdout
    assert "WARN privileges: the credential can write" in result.stdout

    run_sql(pg_url, "CREATE INDEX ON events (updated_at)", "CREATE ROLE oso_reader_t LOGIN",
            "GRANT SELECT ON events, users TO oso_reader_t")
    reader = sa.engine.make_url(pg_url).set(username="oso_reader_t").render_as_string(hide_password=False)
    try:
        result = _cli(env_with(site, DAGSTER__SHOP__DB=reader), tmp_path, "check", "shop")
        assert result.returncode == 0, result.stdout
        assert "WARN" not in result.stdout
        assert "read-only" in result.stdout
    finally:
        run_sql(pg_url, "DROP OWNED BY oso_reader_t", "DROP ROLE oso_reader_t")


@pytest.mark.postgres
def test_check_fails_on_missing_table_and_secret(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamp NOT NULL)")
    site = _site(tmp_path, "shop", "user")  # 'user' does not exist (typo for 'users')
    result = _cli(env_with(site, DAGSTER__SHOP__DB=pg_url), tmp_path, "check")
    assert result.returncode == 1
    assert "FAIL user: Table 'user' does not exist" in result.stdout
    missing = _cli(env_with(site), tmp_path, "check", "shop")
    assert missing.returncode == 1
    assert "DAGSTER__SHOP__DB" in missing.stdout
    unknown = _cli(env_with(site), tmp_path, "check", "nope")
    assert unknown.returncode == 2 and "no source named 'nope'" in unknown.stderr


@pytest.mark.postgres
def test_check_wrong_password_is_masked(tmp_path: Path, pg_url: str) -> None:
    site = _site(tmp_path, "shop", "users")
    bad = sa.engine.make_url(pg_url).set(port=1, password="hunter2-secret").render_as_string(hide_password=False)
    result = _cli(env_with(site, DAGSTER__SHOP__DB=bad), tmp_path, "check", "shop")
    assert result.returncode == 1
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert "FAIL connection" in result.stdout


@pytest.mark.mariadb
def test_check_mariadb(tmp_path: Path, mysql_url: str) -> None:
    run_sql(mysql_url, "CREATE TABLE events (id int PRIMARY KEY, updated_at datetime NOT NULL, INDEX (updated_at))",
            "CREATE TABLE users (id int PRIMARY KEY)")
    site = _site(tmp_path, "shop", "users")
    result = _cli(env_with(site, DAGSTER__SHOP__DB=mysql_url), tmp_path, "check", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   events: readable" in result.stdout
    assert "has no index" not in result.stdout
    assert "WARN privileges" in result.stdout  # root can write
