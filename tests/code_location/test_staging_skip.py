"""Staging views are re-created only when they changed (oso_dagster.run.staging_skip), through the real
``dagster asset materialize``; one run sequence keeps it short."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from conftest import run_sql
from oso_dagster.run.staging_skip import REBUILD_TAG, plan_staging, rebuild_requested
from oso_dagster.settings import Settings

from code_location.helpers import env_with, install, materialize, scaffold

pytestmark = [pytest.mark.slow]

TABLES = ("a", "b", "c")


def _built_at(home: Path) -> dict[str, object]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT unique_id, built_at FROM staging._oso_staging_state").fetchall()
    return {uid.rsplit(".", 1)[-1]: built for uid, built in rows}


def _ok(env: dict[str, str], cwd: Path, select: str = "*") -> str:
    done = materialize(env, cwd, select)
    assert done.returncode == 0, done.stderr[-5000:]
    return done.stdout + done.stderr


def test_only_changed_views_are_recreated(tmp_path: Path, sqlite_url: str, oso_env: Path) -> None:
    run_sql(sqlite_url, *[s for t in TABLES for s in (
        f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT)", f"INSERT INTO {t} VALUES (1, 'x'), (2, 'y')")])
    site = tmp_path / "site"
    install(scaffold("many_stg", sqlite_url, tmp_path / "out"), site)
    env = env_with(site, DAGSTER__MANY_STG__DB_CONNECTION_STRING=sqlite_url)

    _ok(env, tmp_path)
    first = _built_at(oso_env)
    assert set(first) == {f"stg_many_stg__{t}" for t in TABLES}

    # a: its table gains a column; b: its view was dropped by hand; c: nothing changed
    run_sql(sqlite_url, "ALTER TABLE a ADD COLUMN extra TEXT", "INSERT INTO a VALUES (3, 'z', 'e')")
    with duckdb.connect(str(oso_env / "warehouse.duckdb")) as con:
        con.execute("DROP VIEW staging.stg_many_stg__b")
    out = _ok(env, tmp_path)
    assert "1 view(s) unchanged" in out, out[-3000:]
    # the unchanged view is still reported materialized by this run, so Dagster does not show it out of date
    materialized = [line for line in out.splitlines() if "ASSET_MATERIALIZATION" in line]
    assert any("stg_many_stg__c" in line for line in materialized), "\n".join(materialized)
    second = _built_at(oso_env)
    assert second["stg_many_stg__c"] == first["stg_many_stg__c"]
    assert second["stg_many_stg__a"] != first["stg_many_stg__a"]
    assert second["stg_many_stg__b"] != first["stg_many_stg__b"]
    with duckdb.connect(str(oso_env / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.stg_many_stg__b").fetchone() == (2,)

    # nothing changed since: every view is left alone, unless a rebuild is asked for (env or run tag)
    manifest = json.loads((oso_env / "dbt" / "target" / "manifest.json").read_text())
    models = [uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"]
    settings = Settings.from_env()
    assert sorted(plan_staging(settings, manifest, models, force=False).unchanged) == sorted(models)
    assert rebuild_requested(Settings.from_env({**os.environ, "OSO_REBUILD_STAGING": "1"}), {})
    assert rebuild_requested(settings, {REBUILD_TAG: "true"}) and not rebuild_requested(settings, {})
    assert sorted(plan_staging(settings, manifest, models, force=True).build) == sorted(models)
