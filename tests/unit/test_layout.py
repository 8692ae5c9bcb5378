"""The package's folders are its architecture: module-level imports point down the layers only.

A function may import upwards lazily (``sql_assets`` imports the run code inside the asset body, so that
loading definitions imports none of it); a module-level import that runs back up fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugin" / "oso_dagster"

# higher may import lower or equal, never higher
RANKS = {
    "entry": 7,  # __init__.py, definitions.py, demo.py: what users and Dagster import
    "cli": 6,
    "ops": 5,
    "scaffold": 5,
    "location": 4,
    "run": 3,
    "warehouse": 2,
    "factories": 2,
    "utils": 1,
    "leaf": 1,  # errors, settings, naming, type_mapping, database
}


def _layer(module: str) -> str:
    """``oso_dagster.run.replicate`` -> ``run``; top-level modules are leaves or entry points."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "entry" if parts[-1] in ("oso_dagster", "definitions", "demo", "__init__") else "leaf"


def _module_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def _target(module: str, name: str) -> str:
    """``from oso_dagster.run import load_duckdb`` imports the module ``oso_dagster.run.load_duckdb``."""
    inside = PACKAGE.joinpath(*module.split(".")[1:], name)
    return f"{module}.{name}" if inside.with_suffix(".py").exists() or inside.is_dir() else module


def _module_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("oso_dagster"):
            found.extend(_target(node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("oso_dagster"))
    return found


def test_module_level_imports_point_down_the_layers() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "template" in path.relative_to(PACKAGE).parts:
            continue
        here = _module_of(path)
        if path.name == "__init__.py" and path.parent == PACKAGE:
            here = "oso_dagster"
        for imported in _module_level_imports(path):
            if RANKS[_layer(imported)] > RANKS[_layer(here)]:
                upward.append(f"{here} ({_layer(here)}) imports {imported} ({_layer(imported)})")
    assert not upward, "imports that run back up the layers:\n" + "\n".join(upward)


def test_every_folder_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(RANKS), f"add the new folder to RANKS and to docs/index.md: {folders - set(RANKS)}"


def test_the_check_sees_an_upward_import() -> None:
    assert RANKS[_layer("oso_dagster.run.replicate")] > RANKS[_layer("oso_dagster.factories.sql")]
    assert _layer("oso_dagster.settings") == "leaf" and _layer("oso_dagster.definitions") == "entry"
    assert "oso_dagster.run.failures" in _module_level_imports(PACKAGE / "run" / "replicate.py")
