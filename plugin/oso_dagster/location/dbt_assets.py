"""The staging models as Dagster assets (dagster-dbt), one step per source package, wired to the tables they read."""


import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from oso_dagster.location.dbt_project import dbt_env, dbt_executable, source_group_names
from oso_dagster.run.staging_skip import build_staging
from oso_dagster.settings import Settings
from oso_dagster.warehouse.destinations import warehouse_write_lock

DBT_RESOURCE_KEY = "dbt"


class OsoDbtTranslator(DagsterDbtTranslator):
    """Groups each staging model with the source it stages; sources keep their ``meta.dagster.asset_key``."""

    def __init__(self, groups: Mapping[str, str]) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self._groups = dict(groups)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return self._groups.get(dbt_resource_props.get("package_name", "")) or super().get_group_name(
            dbt_resource_props
        )


def build_staging_assets(manifest: Path, settings: Settings) -> list[AssetsDefinition]:
    """One dagster-dbt multi-asset per source package, named ``stage_<source>``.

    Each step then waits only for its own source's replication: a source that fails skips its own staging
    and no other's. All of them share the umbrella project and its manifest; each runs ``dbt build --select
    package:<its dbt package>``.
    """
    data = json.loads(manifest.read_text(encoding="utf-8"))
    groups = source_group_names(data)
    translator = OsoDbtTranslator(groups)
    assets = []
    used: set[str] = set()
    for package in packages_with_models(data):
        name = f"stage_{groups.get(package, package)}"
        if name in used:  # two packages staging the same source: fall back to the unique package name
            name = f"stage_{package}"
        used.add(name)
        assets.append(_package_assets(package_manifest(data, package), package, name, translator, settings))
    return assets


def package_manifest(manifest: Mapping[str, Any], package: str) -> dict[str, Any]:
    """The manifest cut down to one package's nodes and sources plus their direct parents.

    dagster-dbt builds a dbt selection graph over the manifest it is given, once per definition: cutting it
    keeps the load linear in the number of packages instead of quadratic.
    """
    nodes = manifest.get("nodes", {})
    sources = manifest.get("sources", {})
    own = {uid for uid, node in [*nodes.items(), *sources.items()] if node.get("package_name") == package}
    parents = {parent for uid in own for parent in (nodes.get(uid) or {}).get("depends_on", {}).get("nodes", [])}
    kept = own | parents
    child_map = manifest.get("child_map", {})
    return {
        **manifest,
        "nodes": {uid: node for uid, node in nodes.items() if uid in kept},
        "sources": {uid: source for uid, source in sources.items() if uid in kept},
        "child_map": {uid: [c for c in child_map.get(uid, []) if c in kept] for uid in kept},
        "parent_map": {uid: [p for p in manifest.get("parent_map", {}).get(uid, []) if p in kept] for uid in kept},
    }


def packages_with_models(manifest: Mapping[str, Any]) -> list[str]:
    """The dbt packages that have something to build (models, seeds, snapshots), sorted."""
    kinds = {"model", "seed", "snapshot"}
    return sorted({node["package_name"] for node in manifest.get("nodes", {}).values()
                   if node.get("resource_type") in kinds})


def _package_assets(manifest: Mapping[str, Any], package: str, name: str,
                    translator: DagsterDbtTranslator, settings: Settings) -> AssetsDefinition:
    @dbt_assets(manifest=manifest, select=f"package:{package}", name=name, dagster_dbt_translator=translator)
    def _staging(context: AssetExecutionContext, dbt: DbtCliResource):
        # dbt-duckdb writes the same file as replication: take the same lock. ``settings`` are the code
        # location's, read once when it loaded (in the run's own process too).
        # views whose SQL, config and table columns did not change are not re-created (run/staging_skip.py)
        with warehouse_write_lock(settings):
            yield from build_staging(context, dbt, manifest, translator, settings)

    return _staging


def dbt_resource(project_dir: Path) -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(project_dir),
        profiles_dir=str(project_dir),
        dbt_executable=dbt_executable(),
        global_config_flags=["--no-use-colors", "--no-send-anonymous-usage-stats"],
    )


__all__ = ["DBT_RESOURCE_KEY", "OsoDbtTranslator", "build_staging_assets", "dbt_env", "dbt_resource",
           "package_manifest", "packages_with_models"]
