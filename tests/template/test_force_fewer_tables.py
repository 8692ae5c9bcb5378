"""`--force` with fewer tables removes the staging models it generated for the dropped ones (naming the edited
ones), and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import bake, check_generated, expected_paths, files, load_yaml, ok
from .test_end_to_end import install


@pytest.mark.slow
def test_force_with_fewer_tables_removes_their_models_and_the_package_still_passes(tmp_path: Path) -> None:
    ok(bake(tmp_path, "fdb", "--table", "events", "--table", "users", "--table", "Order Items"))
    project = tmp_path / "oso-source-fdb"
    staging = project / "src/oso_source_fdb/dbt/models/staging"
    (staging / "stg_fdb__users.sql").write_text("-- edited by hand\nselect * from {{ source('fdb', 'users') }}\n",
                                                encoding="utf-8")
    own = staging / "stg_fdb__legacy.sql"  # named like a generated model, but no table 'legacy' was generated
    own.write_text("select 1 as id\n", encoding="utf-8")

    result = ok(bake(tmp_path, "fdb", "--table", "events", "--force"))
    assert "Removed the staging models generated for tables no longer replicated:" in result.stdout
    removed = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(f"  {staging}")}
    # the same rule as --update's: edited means it differs from the render snapshot; --force removes it, and says so
    assert "edited by hand" in removed[str(staging / "stg_fdb__users.sql")]
    assert "edited by hand" not in removed[str(staging / "stg_fdb__order_items.sql")]
    assert str(own) not in result.stdout
    assert set(files(project)) == expected_paths("fdb", ["events"]) | {str(own.relative_to(project))}
    assert own.read_text(encoding="utf-8") == "select 1 as id\n"
    assert [m["name"] for m in load_yaml(project, "fdb", "models")["models"]] == ["stg_fdb__events"]
    assert [t["name"] for t in load_yaml(project, "fdb", "sources")["sources"][0]["tables"]] == ["events"]
    check_generated(project)

    # The package's own tests (dbt parse among them) pass: no model is left pointing at a dropped source.
    own.unlink()
    site = tmp_path / "site"
    install(project, site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSO_", "DAGSTER__"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env["OSO_HOME"] = str(tmp_path / "oso_home")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                           env=env, capture_output=True, text=True, check=False, timeout=300)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout


def test_force_with_the_same_tables_removes_nothing(tmp_path: Path) -> None:
    ok(bake(tmp_path, "fdb", "--table", "events", "--table", "users"))
    result = ok(bake(tmp_path, "fdb", "--table", "users", "--table", "events", "--force"))
    assert "Removed" not in result.stdout
    assert set(files(tmp_path / "oso-source-fdb")) == expected_paths("fdb", ["events", "users"])
