"""A broken or conflicting source package is named, with its fix, and never silently dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from code_location.helpers import BIN, env_with, install, load_graph, write_package

GOOD = """
from oso_dagster.factories.sql import sql_assets
from oso_dagster.utils.secrets import SecretReference
good = sql_assets("{name}", SecretReference(group_name="{name}", key="db"), [{{"table": "t"}}])
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    target.mkdir()
    install(write_package(tmp_path, "oso-source-good", "oso_source_good", "good", GOOD.format(name="good")), target)
    return target


def _load(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import oso_dagster.definitions"], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_import_error_fails_the_load_naming_the_distribution(tmp_path: Path, site: Path) -> None:
    broken = write_package(tmp_path, "oso-source-broken", "oso_source_broken", "broken",
                           "import not_a_module_anywhere\n")
    install(broken, site)
    result = _load(env_with(site), tmp_path)
    assert result.returncode != 0
    assert "oso-source-broken" in result.stderr
    assert "failed to import" in result.stderr and "pip uninstall oso-source-broken" in result.stderr


def test_warn_mode_keeps_good_sources_and_lists_the_broken_one(tmp_path: Path, site: Path) -> None:
    install(write_package(tmp_path, "oso-source-broken", "oso_source_broken", "broken", "x = 1\n"), site)
    env = env_with(site, OSO_ON_BROKEN_SOURCE="warn")
    graph = load_graph(env, tmp_path)
    assert "good/t" in graph
    listing = subprocess.run([str(BIN / "oso-sources"), "list"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, check=False)
    assert listing.returncode == 1
    assert "good" in listing.stdout
    assert "BROKEN" in listing.stderr and "oso-source-broken" in listing.stderr
    assert "provides no sql_assets" in listing.stderr


def test_duplicate_source_name_names_both_distributions(tmp_path: Path, site: Path) -> None:
    install(write_package(tmp_path, "oso-source-twin", "oso_source_twin", "twin", GOOD.format(name="good")), site)
    result = _load(env_with(site), tmp_path)
    assert result.returncode != 0
    assert "oso-source-twin" in result.stderr and "oso-source-good" in result.stderr
    assert "must be unique" in result.stderr
