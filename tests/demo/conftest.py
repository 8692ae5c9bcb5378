"""The demo's result, built once for the tests of this folder: what `nox -s demo` does, step by step."""

from __future__ import annotations

import subprocess
import sys

import pytest
from code_location.helpers import env_with, install


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("demo")
    root, site = base / "oso-demo", base / "site"
    site.mkdir()
    demo = [sys.executable, "-m", "oso_dagster.demo", "--dir", str(root)]
    prepared = subprocess.run([*demo, "prepare"], cwd=base, capture_output=True, text=True, check=False)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    install(root / "oso-source-demo", site)
    env = env_with(site)
    ran = subprocess.run([*demo, "run"], cwd=base, env=env, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-8000:]
    return {"root": root, "site": site, "env": env, "output": ran.stdout, "cwd": base}
