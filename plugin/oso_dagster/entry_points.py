"""Installed source packages as metadata only: no package is imported and Dagster is not loaded.

Kept import-light so that the dbt manifest can be checked (and re-parsed in the background) while the
rest of the code location is still importing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

ENTRY_POINT_GROUP = "oso_dagster.sources"


@dataclass(frozen=True)
class DbtPackage:
    """A distribution that ships staging models (its ``<package>/dbt`` folder)."""

    distribution: str
    version: str
    dbt_dir: Path | None


def installed_entry_points() -> list[tuple[str, str, EntryPoint]]:
    """``(distribution, version, entry point)`` for the group, sorted and de-duplicated by distribution.

    A distribution seen twice on ``sys.path`` counts once: the first one wins, as for imports.
    """
    seen: dict[str, tuple[str, str, list[EntryPoint]]] = {}
    for dist in distributions():
        name = dist.metadata["Name"] or "?"
        key = _normalized(name)
        if key in seen:
            continue
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        seen[key] = (name, dist.version, eps)
    return sorted(
        ((name, version, ep) for name, version, eps in seen.values() for ep in eps),
        key=lambda item: (item[0].lower(), item[2].name),
    )


def same_distribution(a: str, b: str) -> bool:
    """Distribution names compare as pip does: case, ``-``, ``_`` and ``.`` aside."""
    return _normalized(a) == _normalized(b)


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dbt_dir_of(ep: EntryPoint) -> Path | None:
    """``<top-level package>/dbt`` if it holds a dbt project (found without importing the package)."""
    top = ep.module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "dbt"
        if (candidate / "dbt_project.yml").is_file():
            return candidate.resolve()
    return None


def installed_dbt_packages() -> list[DbtPackage]:
    return [DbtPackage(dist, version, dbt_dir_of(ep)) for dist, version, ep in installed_entry_points()]
