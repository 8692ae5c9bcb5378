"""A team's own dbt project adds an installed source package's dbt/ as a local package and ref()s its models."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import duckdb
import pytest
import yaml
from code_location.helpers import BIN, env_with, install, materialize, scaffold
from conftest import run_sql

pytestmark = pytest.mark.slow


def test_own_dbt_project_refs_a_staging_model(tmp_path: Path, sqlite_url: str, oso_env: Path) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY, kind text NOT NULL)",
            "INSERT INTO events VALUES (1, 'click'), (2, 'view'), (3, 'click')")
    site = tmp_path / "site"
    install(scaffold("mydb", sqlite_url, tmp_path / "out"), site)
    env = env_with(site, DAGSTER__MYDB__DB_CONNECTION_STRING=sqlite_url)
    replicated = materialize(env, tmp_path, "key:mydb/*")
    assert replicated.returncode == 0, (replicated.stdout + replicated.stderr)[-4000:]

    printed = subprocess.run([str(BIN / "oso-sources"), "dbt-package", "mydb"], env=env, capture_output=True,
                             text=True, check=False)
    assert printed.returncode == 0, printed.stderr
    entry = yaml.safe_load(printed.stdout)
    (local,) = [p["local"] for p in entry["packages"]]
    assert Path(local) == site / "oso_source_mydb" / "dbt"

    # the team's own project, with its own profile pointing at the same warehouse file
    project = tmp_path / "analytics"
    (project / "models").mkdir(parents=True)
    (project / "packages.yml").write_text(printed.stdout, encoding="utf-8")
    (project / "dbt_project.yml").write_text(textwrap.dedent("""
        name: analytics
        version: "1.0.0"
        config-version: 2
        profile: analytics
        model-paths: ["models"]
    """), encoding="utf-8")
    warehouse = oso_env / "warehouse.duckdb"
    (project / "profiles.yml").write_text(yaml.safe_dump({"analytics": {"target": "dev", "outputs": {
        "dev": {"type": "duckdb", "path": str(warehouse), "schema": "analytics", "threads": 1}}}}), encoding="utf-8")
    (project / "models" / "clicks.sql").write_text(
        "select count(*) as clicks from {{ ref('stg_mydb__events') }} where kind = 'click'\n", encoding="utf-8")
    for args in (["deps"], ["build"]):
        dbt = subprocess.run([str(BIN / "dbt"), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
                             cwd=project, env=env, capture_output=True, text=True, check=False)
        assert dbt.returncode == 0, dbt.stdout[-4000:]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT clicks FROM analytics.clicks").fetchone() == (2,)


def test_unknown_source_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN / "oso-sources"), "dbt-package", "nope"], capture_output=True, text=True,
                            check=False, env=env_with(tmp_path))
    assert result.returncode == 2 and "no source named 'nope'" in result.stderr
