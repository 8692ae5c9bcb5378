"""Settings read from the environment and the health `oso-sources list` shows, through the real CLIs.

A scaffolded SQLite source is installed into a folder on PYTHONPATH; runs go through `dagster` and real dbt.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import run_sql

from code_location.helpers import BIN, env_with, install, materialize, scaffold

ROW_COUNT = "row_count_matches_source"

SCHEDULE_JOB = """
import json
from oso_dagster.definitions import defs
schedule = defs.resolve_schedule_def("sync_shop")
job = defs.resolve_job_def(schedule.job_name)
print(json.dumps({"job": schedule.job_name,
                  "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)}))
"""

# Checks only, against the instance at DAGSTER_HOME, as a sensor-triggered check run would record them.
ROW_COUNT_CHECK_RUN = f"""
import dagster
from oso_dagster.definitions import defs
key = dagster.AssetCheckKey(dagster.AssetKey(["shop", "users"]), "{ROW_COUNT}")
with dagster.DagsterInstance.get() as instance:
    result = dagster.materialize([*defs.assets, *defs.asset_checks], selection=dagster.AssetSelection.checks(key),
                                 instance=instance, resources=defs.resources, raise_on_error=False)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [False]
"""


@pytest.fixture
def shop(tmp_path: Path, sqlite_url: str) -> dict[str, object]:
    """Source `shop`: `users` (full refresh, 2 rows) and `events` (incremental, 1 row), installed."""
    run_sql(sqlite_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO users VALUES (1, 'a'), (2, 'b')",
            "CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at TIMESTAMP NOT NULL)",
            "INSERT INTO events VALUES (1, '2024-01-01 00:00:00')")
    site = tmp_path / "site"
    site.mkdir()
    install(scaffold("shop", sqlite_url, tmp_path / "out", "--incremental", "events=updated_at"), site)
    return {"site": site, "url": sqlite_url, "cwd": tmp_path}


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result


def _tables(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return {f"{s}.{t}" for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name NOT LIKE '\\_dlt%' "
            "ESCAPE '\\'").fetchall()}


@pytest.mark.slow
def test_sync_schedule_builds_staging_and_list_shows_health(shop: dict[str, object], oso_env: Path,
                                                            tmp_path: Path) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = env_with(shop["site"], DAGSTER_HOME=str(dagster_home), DAGSTER__SHOP__DB_CONNECTION_STRING=shop["url"])
    cwd = shop["cwd"]

    target = json.loads(_run([sys.executable, "-c", SCHEDULE_JOB], env, cwd).stdout.strip().splitlines()[-1])
    assert target["assets"] == ["shop/events", "shop/users", "stg_shop__events", "stg_shop__users"]

    # What the scheduler launches: the schedule's own job, recorded in the instance at DAGSTER_HOME.
    _run([str(BIN / "dagster"), "job", "execute", "-m", "oso_dagster.definitions", "-j", target["job"]], env, cwd)
    assert {"shop.users", "shop.events", "staging.stg_shop__users", "staging.stg_shop__events"} <= _tables(
        oso_env / "warehouse.duckdb")

    run_sql(shop["url"], "INSERT INTO users VALUES (3, 'c')")  # the warehouse copy is now one row short
    _run([sys.executable, "-c", ROW_COUNT_CHECK_RUN], env, cwd)

    listed = _run([str(BIN / "oso-sources"), "list"], env, cwd).stdout
    users = next(line for line in listed.splitlines() if "-> shop.users" in line)
    events = next(line for line in listed.splitlines() if "-> shop.events" in line)
    synced = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"
    assert re.search(synced + r"  2 rows  FAILING: " + ROW_COUNT + "$", users), users
    assert re.search(synced + r"  1 rows$", events), events

    without_instance = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}
    plain = _run([str(BIN / "oso-sources"), "list"], without_instance, cwd).stdout
    assert "-> shop.users" in plain and "UTC" not in plain and "FAILING" not in plain


@pytest.mark.slow
def test_duckdb_path_and_dataset_prefix_from_the_environment(shop: dict[str, object], oso_env: Path,
                                                             tmp_path: Path) -> None:
    warehouse = tmp_path / "elsewhere" / "team.duckdb"
    warehouse.parent.mkdir()
    env = env_with(shop["site"], OSO_DUCKDB_PATH=str(warehouse), OSO_DATASET_PREFIX="dev_",
                   DAGSTER__SHOP__DB_CONNECTION_STRING=shop["url"])
    result = materialize(env, shop["cwd"])
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert not (oso_env / "warehouse.duckdb").exists()
    tables = _tables(warehouse)
    assert {"dev_shop.users", "dev_shop.events"} <= tables
    assert not any(t.startswith("shop.") for t in tables)
    with duckdb.connect(str(warehouse), read_only=True) as conn:  # staging reads the prefixed schema
        assert conn.execute("SELECT id, name FROM staging.stg_shop__users ORDER BY id").fetchall() == [
            (1, "a"), (2, "b")]
        view = conn.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'stg_shop__users'").fetchone()[0]
    assert "dev_shop" in view


def test_invalid_destination_is_a_clear_error(shop: dict[str, object]) -> None:
    env = env_with(shop["site"], OSO_DESTINATION="snowflake")
    for args in (["list"], ["check"]):
        result = subprocess.run([str(BIN / "oso-sources"), *args], env=env, cwd=shop["cwd"], capture_output=True,
                                text=True, check=False)
        assert result.returncode == 1
        assert result.stderr.strip() == ("Error: OSO_DESTINATION='snowflake' is not supported: set it to 'duckdb' "
                                         "(local) or 'bigquery'.")
    load = subprocess.run([str(BIN / "dagster"), "asset", "list", "-m", "oso_dagster.definitions"], env=env,
                          cwd=shop["cwd"], capture_output=True, text=True, check=False)
    assert load.returncode != 0
    assert "OSO_DESTINATION='snowflake' is not supported: set it to 'duckdb' (local) or 'bigquery'." in load.stderr


def test_new_source_writes_into_the_current_directory_by_default(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE users (id INTEGER PRIMARY KEY)")
    here = tmp_path / "here"
    here.mkdir()
    _run([str(BIN / "oso-new-source"), "shop", "--database-url", sqlite_url, "--no-input"], env_with(tmp_path), here)
    assert (here / "oso-source-shop" / "src" / "oso_source_shop" / "assets.py").is_file()
    assert sorted(p.name for p in here.iterdir()) == ["oso-source-shop"]
