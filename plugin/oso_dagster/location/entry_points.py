"""Installed source packages as metadata only: no package is imported and Dagster is not loaded.

Kept import-light so that the dbt manifest can be checked (and re-parsed in the background) while the
rest of the code location is still importing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

from oso_dagster.errors import ConfigurationError
from oso_dagster.settings import distribution_key, source_packages

ENTRY_POINT_GROUP = "oso_dagster.sources"


@dataclass(frozen=True)
class DbtPackage:
    """A distribution that ships staging models (its ``<package>/dbt`` folder)."""

    distribution: str
    version: str
    dbt_dir: Path | None


def installed_entry_points() -> list[tuple[str, str, EntryPoint]]:
    """``(distribution, version, entry point)`` for the group, sorted and de-duplicated by distribution.

    A distribution seen twice on ``sys.path`` counts once: the first one wins, as for imports. With
    ``OSO_SOURCE_PACKAGES`` set, only the distributions it names (each must be installed).
    """
    seen: dict[str, tuple[str, str, list[EntryPoint]]] = {}
    for dist in distributions():
        name = dist.metadata["Name"] or "?"
        key = distribution_key(name)
        if key in seen:
            continue
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        seen[key] = (name, dist.version, eps)
    wanted = source_packages()
    if wanted is not None:
        _check_installed(wanted, {key for key, (_, _, eps) in seen.items() if eps})
        seen = {key: found for key, found in seen.items() if key in wanted}
    return sorted(
        ((name, version, ep) for name, version, eps in seen.values() for ep in eps),
        key=lambda item: (item[0].lower(), item[2].name),
    )


def same_distribution(a: str, b: str) -> bool:
    """Distribution names compare as pip does: case, ``-``, ``_`` and ``.`` aside."""
    return distribution_key(a) == distribution_key(b)


def _check_installed(wanted: frozenset[str], installed: set[str]) -> None:
    """``OSO_SOURCE_PACKAGES`` may only name installed source packages: a typo must not hide a source."""
    missing = sorted(wanted - installed)
    if missing:
        raise ConfigurationError(
            f"OSO_SOURCE_PACKAGES names {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not an "
            f"installed source package (installed: {', '.join(sorted(installed)) or 'none'}). Install it, or "
            "remove it from OSO_SOURCE_PACKAGES (unset, every installed source package is served)."
        )


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


def installed_dbt_packages(
    entries: list[tuple[str, str, EntryPoint]] | None = None,
) -> list[DbtPackage]:
    """The dbt folders of ``entries`` (default: scan what is installed); pass a scan to reuse it."""
    found = installed_entry_points() if entries is None else entries
    return [DbtPackage(dist, version, dbt_dir_of(ep)) for dist, version, ep in found]
