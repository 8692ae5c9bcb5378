"""Maps a replicated table to its Dagster asset spec: the one place asset keys, groups and kinds are decided."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import AssetKey, AssetSpec
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from oso_dagster.factories.config import TableConfig
from oso_dagster.naming import mode_label

META_SOURCE_TABLE = "oso/source_table"
META_CURSOR = "oso/cursor"
META_WRITE_DISPOSITION = "oso/write_disposition"
META_SECRET = "oso/secret"


def asset_key(source_name: str, config: TableConfig) -> AssetKey:
    """``[source, table as it lands in the warehouse]``; dbt sources point at the same key."""
    return AssetKey([source_name, config.landing_name])


def table_asset_spec(source_name: str, config: TableConfig, destination: str, secret_label: str) -> AssetSpec:
    mode = mode_label(config.cursor_column, markdown=True)
    metadata: dict[str, str] = {
        META_SOURCE_TABLE: config.qualified_name,
        META_WRITE_DISPOSITION: config.write_disposition,
        META_SECRET: secret_label,
    }
    if config.cursor_column:
        metadata[META_CURSOR] = config.cursor_column
    return AssetSpec(
        key=asset_key(source_name, config),
        group_name=source_name,
        description=f"`{config.qualified_name}` replicated from source `{source_name}` ({mode}).",
        kinds={"dlt", destination},
        metadata=metadata,
        tags={"oso/source": source_name},
    )


class OsoDltTranslator(DagsterDltTranslator):
    """Run-time mapping from dlt resources (named by their landing table) back to our specs."""

    def __init__(self, specs_by_resource: Mapping[str, AssetSpec]) -> None:
        self._specs = dict(specs_by_resource)

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        return self._specs[data.resource.name]
