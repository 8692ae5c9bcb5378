"""Installing as docs/installation.md says, into a fresh virtual environment that holds nothing else.

oso-dagster is not on PyPI yet, so the checkout and a wheel built from it are the two ways in; a generated
package (which depends on ``oso-dagster`` by name) must then install next to it and be discovered. The installs
go through ``uv pip install`` (pip's interface, with the warm uv cache; plain pip takes minutes here), with the
arguments docs/installation.md prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_sql

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALLATION = (ROOT / "docs" / "installation.md").read_text()


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _fresh_venv(tmp_path: Path) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to create the fresh environment (pip install uv)"
    _run([uv, "venv", "--python", sys.executable, str(tmp_path / "venv")], tmp_path)
    return tmp_path / "venv" / "bin"


def _pip_install(bin_dir: Path, requirement: str, cwd: Path) -> None:
    assert f"pip install {requirement}" in INSTALLATION.replace("'", ""), f"docs/installation.md lacks {requirement}"
    _run([shutil.which("uv") or "uv", "pip", "install", "--python", str(bin_dir / "python"), requirement], cwd)


def _generated_package_installs_next_to_it(bin_dir: Path, work: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    _run([str(bin_dir / "oso-new-source"), "mydb", "--database-url", sqlite_url, "--no-input"], work)
    _pip_install(bin_dir, "./oso-source-mydb", work)
    listed = _run([str(bin_dir / "oso-sources"), "list"], work).stdout
    assert "mydb  (oso-source-mydb 0.1.0; dbt models: yes" in listed, listed
    where = _run([str(bin_dir / "python"), "-c", "import oso_dagster; print(oso_dagster.__file__)"], work).stdout
    assert where.startswith(str(bin_dir.parent)), f"oso_dagster came from {where}, not the fresh environment"


def test_checkout_with_extras_then_a_generated_package(tmp_path: Path, sqlite_url: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "oso-dagster").symlink_to(ROOT)  # the folder the repository was cloned into
    bin_dir = _fresh_venv(tmp_path)
    _pip_install(bin_dir, "./oso-dagster[bigquery,gcp]", work)
    _run([str(bin_dir / "python"), "-c", "import google.cloud.secretmanager, dbt.adapters.bigquery"], work)
    _generated_package_installs_next_to_it(bin_dir, work, sqlite_url)


def test_wheel_then_a_generated_package(tmp_path: Path, sqlite_url: str) -> None:
    work = tmp_path / "work"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
          str(work / "dist"), str(ROOT)], tmp_path)
    (wheel,) = (work / "dist").glob("oso_dagster-*.whl")
    assert "oso_dagster/template/cookiecutter.json" in zipfile.ZipFile(wheel).namelist()
    documented = re.search(r"dist/(oso_dagster-[^\s`'\[]+\.whl)", INSTALLATION)
    assert documented and documented[1] == wheel.name, "docs/installation.md names another wheel than is built"
    bin_dir = _fresh_venv(tmp_path)
    _pip_install(bin_dir, f"dist/{wheel.name}[bigquery,gcp]", work)
    _generated_package_installs_next_to_it(bin_dir, work, sqlite_url)
