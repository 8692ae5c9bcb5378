"""The Dagster code location: ``dagster dev -m oso_dagster.definitions``.

Loading it discovers installed source packages and (re)uses the cached dbt manifest. It connects to
no database and resolves no secret; that happens when a run starts.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor, multiprocess_executor

from oso_dagster.dbt_assets import DBT_RESOURCE_KEY, build_staging_assets, dbt_resource
from oso_dagster.dbt_project import prepare
from oso_dagster.discovery import Discovery, discover
from oso_dagster.settings import Settings


def build_definitions(settings: Settings | None = None, discovery: Discovery | None = None) -> Definitions:
    """Replication assets of every installed source package, plus their staging models."""
    settings = settings or Settings.from_env()
    discovery = discovery or discover()
    assets = [a for package in discovery.packages for a in package.assets]
    resources = {}
    manifest = prepare(settings, discovery.packages)
    if manifest is not None:
        assets.append(build_staging_assets(manifest))
        resources[DBT_RESOURCE_KEY] = dbt_resource(settings.dbt_dir)
    # DuckDB takes one writer per file, so local runs execute their steps one after another in one
    # process (no per-step interpreter start-up either); BigQuery runs steps in parallel processes.
    executor = in_process_executor if settings.destination == "duckdb" else multiprocess_executor
    return Definitions(assets=assets, resources=resources, executor=executor)


defs = build_definitions()
