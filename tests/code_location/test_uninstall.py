"""docs/guide.md: "Uninstalling the package removes its assets and models; nothing else needs editing"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_sql

from code_location.helpers import env_with, install, load_graph, scaffold, scope_to


@pytest.mark.slow
def test_uninstalling_a_package_removes_its_assets_and_models(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    site = tmp_path / "site"
    site.mkdir()
    for name in ("shop", "crm"):
        install(scaffold(name, sqlite_url, tmp_path / "out"), site)
    env = env_with(site)
    before = load_graph(env, tmp_path)
    assert {"shop/users", "stg_shop__users", "crm/users", "stg_crm__users"} <= set(before)

    uv = shutil.which("uv")
    assert uv, "uv is needed to uninstall from the --target folder (pip cannot)"
    subprocess.run([uv, "pip", "uninstall", "--python", sys.executable, "--target", str(site), "oso-source-crm"],
                   check=True, capture_output=True)
    scope_to(env, site)  # OSO_SOURCE_PACKAGES may only name installed packages
    after = load_graph(env, tmp_path)  # the same OSO_HOME: the cached dbt project must follow the uninstall
    assert {"shop/users", "stg_shop__users"} <= set(after)
    assert not [key for key in after if "crm" in key]
