"""One source's failure stays with that source: a bad secret, database or dbt model never stops another source.

Two generated packages on real SQLite databases, the real `dagster asset materialize` and dbt, a real DuckDB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import run_sql

from code_location.helpers import BIN, env_with, install, load_graph, materialize, scaffold

pytestmark = pytest.mark.slow

BROKEN_MODEL = "select * from {{ source('bad', 'gone') }}\n"

SYNC_JOBS = """
import json
from oso_dagster.definitions import defs
jobs = {}
for schedule in defs.schedules:
    job = defs.resolve_job_def(schedule.job_name)
    jobs[schedule.name] = {"assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
                           "steps": sorted(job.graph.node_dict)}
checks = {a.node_def.name: sorted(k.name for k in a.check_keys) for a in defs.assets if hasattr(a, "check_keys")}
print(json.dumps({"jobs": jobs, "checks": checks}))
"""


def _database(path: Path, table: str) -> str:
    url = f"sqlite:///{path}"
    run_sql(url, f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)",
            f"INSERT INTO {table} VALUES (1, 'x'), (2, 'y'), (3, 'z')")
    return url


def _site(tmp_path: Path, broken_model: bool = False) -> tuple[Path, dict[str, str]]:
    """Packages `good` (table events) and `bad` (table orders), installed; their databases' URLs."""
    urls = {"good": _database(tmp_path / "good.sqlite", "events"), "bad": _database(tmp_path / "bad.sqlite", "orders")}
    out, site = tmp_path / "out", tmp_path / "site"
    site.mkdir()
    install(scaffold("good", urls["good"], out), site)
    bad = scaffold("bad", urls["bad"], out)
    if broken_model:  # the model of a table whose dbt source is gone: dbt parse fails on it
        (bad / "src/oso_source_bad/dbt/models/staging/stg_bad__gone.sql").write_text(BROKEN_MODEL, encoding="utf-8")
    install(bad, site)
    return site, urls


def _relations(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("failure", ["secret_unset", "database_cannot_be_opened"])
def test_a_failing_source_does_not_stop_the_others(tmp_path: Path, oso_env: Path, failure: str) -> None:
    site, urls = _site(tmp_path)
    secrets = {"DAGSTER__GOOD__DB_CONNECTION_STRING": urls["good"]}
    if failure == "database_cannot_be_opened":
        secrets["DAGSTER__BAD__DB_CONNECTION_STRING"] = f"sqlite:///{tmp_path / 'no_such_folder' / 'bad.sqlite'}"
    result = materialize(env_with(site, **secrets), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "the run hid the bad source's failure"
    assert 'Execution of step "replicate_bad" failed' in output
    expected = "Secret bad/db_connection_string is not set" if failure == "secret_unset" else "unable to open database"
    assert expected in output
    assert "Dependencies for step stage_bad failed" in output  # only the bad source's staging is skipped
    assert 'Finished execution of step "stage_good"' in output, output[-6000:]

    relations = _relations(oso_env / "warehouse.duckdb")
    assert {"good.events", "staging.stg_good__events"} <= relations
    assert not any(r.startswith("bad.") or r.startswith("staging.stg_bad__") for r in relations)
    with duckdb.connect(str(oso_env / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM staging.stg_good__events").fetchone() == (3,)


def test_each_source_has_its_own_staging_step_in_its_sync_job(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    loaded = subprocess.run([sys.executable, "-c", SYNC_JOBS], env=env_with(site), cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr[-5000:]
    found = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert found["jobs"]["sync_good"]["assets"] == ["good/events", "stg_good__events"]
    assert "stage_good" in found["jobs"]["sync_good"]["steps"]
    assert not any("bad" in step for step in found["jobs"]["sync_good"]["steps"])
    assert found["jobs"]["sync_bad"]["assets"] == ["bad/orders", "stg_bad__orders"]
    # dbt's tests stay asset checks, on the step of their own package
    assert found["checks"]["stage_good"] == ["not_null_stg_good__events_id", "unique_stg_good__events_id"]


def test_unparseable_models_leave_out_only_their_package(tmp_path: Path, oso_env: Path) -> None:
    site, urls = _site(tmp_path, broken_model=True)
    env = env_with(site)
    graph = load_graph(env, tmp_path)  # loads, although the umbrella dbt parse fails on package `bad`
    assert graph["stg_good__events"] == ["good/events"]
    assert "bad/orders" in graph, "the broken package's replication must still load"
    assert not any(key.startswith("stg_bad__") for key in graph)

    listing = subprocess.run([str(BIN / "oso-sources"), "list"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, check=False)
    assert listing.returncode == 1
    assert "oso-source-bad 0.1.0; dbt models: BROKEN" in listing.stdout
    assert "oso-source-good 0.1.0; dbt models: yes" in listing.stdout
    assert "BROKEN: Source package 'oso-source-bad'" in listing.stderr
    assert "depends on a source named 'bad.gone' which was not found" in listing.stderr
    assert "Fix the model or YAML file named above" in listing.stderr

    secrets = {"DAGSTER__GOOD__DB_CONNECTION_STRING": urls["good"], "DAGSTER__BAD__DB_CONNECTION_STRING": urls["bad"]}
    result = materialize(env_with(site, **secrets), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Source package 'oso-source-bad': its dbt staging models" in result.stderr  # logged while loading
    assert "do not parse, so they are left out" in result.stderr
    assert "staging_models_parse" in output and "depends on a source named 'bad.gone'" in output
    relations = _relations(oso_env / "warehouse.duckdb")
    assert {"good.events", "bad.orders", "staging.stg_good__events"} <= relations
    assert not any(r.startswith("staging.stg_bad__") for r in relations)

    # Fixing the package (here: removing the model) is noticed by the manifest's fingerprint.
    (site / "oso_source_bad/dbt/models/staging/stg_bad__gone.sql").unlink()
    graph = load_graph(env, tmp_path)
    assert graph["stg_bad__orders"] == ["bad/orders"]
    listing = subprocess.run([str(BIN / "oso-sources"), "list"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, check=False)
    assert listing.returncode == 0, listing.stderr
    assert "BROKEN" not in listing.stdout + listing.stderr
