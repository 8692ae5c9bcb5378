"""Installing source packages for a test, and running the real Dagster CLIs against them."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from oso_dagster.location.entry_points import ENTRY_POINT_GROUP

BIN = Path(sys.executable).parent


def install(package_dir: Path, target: Path) -> None:
    """``pip install --no-deps --target`` (uv when available): a real install, kept out of the test venv."""
    uv = shutil.which("uv")
    if uv:
        command = [uv, "pip", "install", "--python", sys.executable, "--no-deps", "--no-build-isolation",
                   "--target", str(target), str(package_dir)]
    else:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                   "--target", str(target), str(package_dir)]
    subprocess.run(command, check=True, capture_output=True)


def env_with(target: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run that sees the source packages installed in ``target`` and no others.

    Source packages installed in the test environment itself are hidden with ``OSO_SOURCE_PACKAGES``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH", "")]))
    scope_to(env, target)
    env.update(extra)
    return env


def scope_to(env: dict[str, str], target: Path) -> None:
    """Point ``OSO_SOURCE_PACKAGES`` at what ``target`` holds now: call again after installing or uninstalling.

    With nothing installed there yet, the variable is left out (naming no package is not a valid setting).
    """
    packages = source_packages_in(target)
    if packages:
        env["OSO_SOURCE_PACKAGES"] = ",".join(packages)
    else:
        env.pop("OSO_SOURCE_PACKAGES", None)


def source_packages_in(target: Path) -> list[str]:
    """The distributions installed in ``target`` that register an ``oso_dagster.sources`` entry point."""
    if not target.is_dir():
        return []
    return sorted(d.metadata["Name"] for d in importlib.metadata.distributions(path=[str(target)])
                  if any(ep.group == ENTRY_POINT_GROUP for ep in d.entry_points))


def scaffold(name: str, url: str, out: Path, *args: str) -> Path:
    """Run the real ``oso-new-source`` against a live database."""
    result = subprocess.run(
        [str(BIN / "oso-new-source"), name, "--database-url", url, "--output-dir", str(out), "--no-input", *args],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / f"oso-source-{name}"


def write_package(root: Path, dist: str, module: str, entry_name: str, assets_py: str) -> Path:
    """A minimal hand-written source package (for broken and conflicting packages)."""
    pkg = root / dist
    (pkg / "src" / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "{dist}"
        version = "0.0.1"
        [project.entry-points."oso_dagster.sources"]
        {entry_name} = "{module}.assets"
        [tool.hatch.build.targets.wheel]
        packages = ["src/{module}"]
    """))
    (pkg / "src" / module / "__init__.py").write_text("")
    (pkg / "src" / module / "assets.py").write_text(textwrap.dedent(assets_py))
    return pkg


GRAPH_SCRIPT = """
import json
from oso_dagster.definitions import defs
graph = defs.resolve_asset_graph()
print(json.dumps({k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
                  for k in graph.get_all_asset_keys()}))
"""


def load_graph(env: dict[str, str], cwd: Path) -> dict[str, list[str]]:
    """Load ``oso_dagster.definitions`` in a fresh interpreter; return asset -> parents."""
    result = subprocess.run([sys.executable, "-c", GRAPH_SCRIPT], env=env, cwd=cwd, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def materialize(env: dict[str, str], cwd: Path, select: str = "*") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "oso_dagster.definitions", "--select", select],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )
