"""Generate from a database with hostile names, install the package for real, run its own tests offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_sql

from .helpers import bake, check_generated, ok


def install(package: Path, target: Path) -> None:
    """``pip install --no-deps --target``, without build isolation so it needs no network."""
    if _has_pip():
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                   "--no-index", "--target", str(target), str(package)]
    else:  # a uv-made venv without pip
        command = ["uv", "pip", "install", "--python", sys.executable, "--no-deps", "--no-build-isolation",
                   "--offline", "--target", str(target), str(package)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _has_pip() -> bool:
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.slow
def test_generate_install_and_run_package_tests(tmp_path: Path, sqlite_url: str) -> None:
    marker = tmp_path / "pwned"
    evil = f'x"); import os; os.system("touch {marker}") #'
    evil_yaml = "a: b\n- c: {{ d }} {% e %}"
    run_sql(
        sqlite_url,
        f'CREATE TABLE "{evil.replace(chr(34), chr(34) * 2)}" (id integer PRIMARY KEY,'
        f' "{evil.replace(chr(34), chr(34) * 2)}" text, "{evil_yaml}" text, updated_at timestamp NOT NULL)',
        'CREATE TABLE "Order Items" ("Item ID" integer PRIMARY KEY, "Select" text, "ürün" text)',
        "CREATE TABLE plain (id integer PRIMARY KEY, created_at timestamp NOT NULL)",
    )
    ok(bake(tmp_path / "out", "e2e", "--database-url", sqlite_url))
    package = tmp_path / "out" / "oso-source-e2e"
    check_generated(package)
    assert not marker.exists()

    target = tmp_path / "site"
    install(package, target)
    assert (target / "oso_source_e2e" / "dbt" / "models" / "staging" / "_e2e__sources.yml").is_file()
    assert (target / "oso_source_e2e" / "dbt" / "dbt_project.yml").is_file()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSO_", "DAGSTER__"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH", "")]))
    env["OSO_HOME"] = str(tmp_path / "oso_home")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package, env=env, capture_output=True, text=True, check=False, timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout
    assert not marker.exists()

    probe = (
        "import importlib.metadata as m, json\n"
        "eps = [e for e in m.entry_points(group='oso_dagster.sources') if e.name == 'e2e']\n"
        "mod = eps[0].load()\n"
        "from dagster import AssetsDefinition\n"
        "from oso_dagster.factories.sql import source_of\n"
        "defs = [v for v in vars(mod).values() if isinstance(v, AssetsDefinition) and source_of(v)]\n"
        "print(json.dumps([eps[0].value, [t.table for t in source_of(defs[0]).tables]]))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr
    value, tables = json.loads(loaded.stdout)
    assert value == "oso_source_e2e.assets"
    assert tables == ["Order Items", "plain", evil]  # the hostile name is data, spelled exactly
    assert not marker.exists()
