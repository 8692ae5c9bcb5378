"""Finds installed source packages through the ``oso_dagster.sources`` entry-point group.

A source package registers ``<name> = "<package>.assets"`` (a module; every module-level object made
by ``sql_assets`` is collected). Its staging models live in ``<package>/dbt`` when present.

A package that cannot be loaded fails discovery with the distribution and entry point named, so its
assets never vanish silently; ``OSO_ON_BROKEN_SOURCE=warn`` keeps the good ones and reports the rest.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path

from dagster import AssetsDefinition

from oso_dagster.errors import SourcePackageError
from oso_dagster.factories.config import SqlSource
from oso_dagster.factories.sql import source_of
from oso_dagster.location.entry_points import ENTRY_POINT_GROUP, DbtPackage, dbt_dir_of, installed_entry_points
from oso_dagster.settings import Settings


@dataclass(frozen=True)
class SourcePackage:
    """One installed distribution and what its entry point provides."""

    distribution: str
    version: str
    entry_point: str
    assets: tuple[AssetsDefinition, ...]
    sources: tuple[SqlSource, ...]
    dbt_dir: Path | None


@dataclass(frozen=True)
class Discovery:
    packages: tuple[SourcePackage, ...]
    errors: tuple[SourcePackageError, ...] = field(default=())

    @property
    def dbt_packages(self) -> list[DbtPackage]:
        """What the umbrella dbt project needs of each package."""
        return [DbtPackage(p.distribution, p.version, p.dbt_dir) for p in self.packages]


def discover(on_broken: str | None = None, entries: list[tuple[str, str, EntryPoint]] | None = None) -> Discovery:
    """Load every installed source package; raise on a broken one unless ``on_broken == "warn"``.

    ``entries``: an :func:`installed_entry_points` scan already made (the code location scans once).
    """
    mode = on_broken or Settings.from_env().on_broken_source
    packages: list[SourcePackage] = []
    errors: list[SourcePackageError] = []
    owners: dict[str, str] = {}
    for dist_name, version, ep in installed_entry_points() if entries is None else entries:
        try:
            package = _load(dist_name, version, ep)
            for source in package.sources:
                if source.name in owners:
                    raise SourcePackageError(
                        f"{_where(dist_name, ep)} defines source {source.name!r}, which {owners[source.name]} "
                        "already defines. Source names must be unique: rename one (its sql_assets name) or "
                        "uninstall one of the packages."
                    )
            for source in package.sources:
                owners[source.name] = f"distribution {dist_name!r}"
            packages.append(package)
        except SourcePackageError as exc:
            if mode == "fail":
                raise
            errors.append(exc)
    return Discovery(packages=tuple(packages), errors=tuple(errors))


def _where(dist_name: str, ep: EntryPoint) -> str:
    return f"Source package {dist_name!r} (entry point {ep.name} = {ep.value!r} in group {ENTRY_POINT_GROUP!r})"


def _load(dist_name: str, version: str, ep: EntryPoint) -> SourcePackage:
    where = _where(dist_name, ep)
    try:
        loaded = ep.load()
    except Exception as exc:
        raise SourcePackageError(
            f"{where} failed to import: {type(exc).__name__}: {exc}. Fix the package (run its own tests) or "
            f"uninstall it with `pip uninstall {dist_name}`."
        ) from exc
    assets = _collect_assets(loaded)
    sources = tuple(s for s in (source_of(a) for a in assets) if s is not None)
    if not sources:
        raise SourcePackageError(
            f"{where} provides no sql_assets(...) object (got {type(loaded).__name__}). The entry point must name "
            "a module that defines `x = sql_assets(...)` at top level, or such an object itself."
        )
    return SourcePackage(
        distribution=dist_name,
        version=version,
        entry_point=f"{ep.name} = {ep.value}",
        assets=assets,
        sources=sources,
        dbt_dir=dbt_dir_of(ep),
    )


def _collect_assets(loaded: object) -> tuple[AssetsDefinition, ...]:
    if isinstance(loaded, types.ModuleType):
        candidates: Iterable[object] = vars(loaded).values()
    elif isinstance(loaded, (list, tuple)):
        candidates = loaded
    else:
        candidates = [loaded]
    found: list[AssetsDefinition] = []
    for obj in candidates:
        items = obj if isinstance(obj, (list, tuple)) else [obj]
        found.extend(a for a in items if isinstance(a, AssetsDefinition) and source_of(a) is not None)
    unique = {id(a): a for a in found}
    return tuple(unique.values())
