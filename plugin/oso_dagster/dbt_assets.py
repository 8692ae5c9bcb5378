"""The staging models as Dagster assets (dagster-dbt), wired to the replicated tables they read."""


from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from oso_dagster.dbt_project import dbt_env, dbt_executable, source_group_names
from oso_dagster.destinations import warehouse_write_lock
from oso_dagster.settings import Settings

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


def build_staging_assets(manifest: Path) -> AssetsDefinition:
    @dbt_assets(
        manifest=manifest,
        name="oso_dbt_staging",
        dagster_dbt_translator=OsoDbtTranslator(source_group_names(manifest)),
    )
    def _staging(context: AssetExecutionContext, dbt: DbtCliResource):  # type: ignore[no-untyped-def]
        # dbt-duckdb writes the same file as replication: take the same lock.
        with warehouse_write_lock(Settings.from_env()):
            yield from dbt.cli(["build"], context=context).stream()

    return _staging


def dbt_resource(project_dir: Path) -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(project_dir),
        profiles_dir=str(project_dir),
        dbt_executable=dbt_executable(),
        global_config_flags=["--no-use-colors", "--no-send-anonymous-usage-stats"],
    )


__all__ = ["DBT_RESOURCE_KEY", "OsoDbtTranslator", "build_staging_assets", "dbt_env", "dbt_resource"]
