"""Assembles the code location: replication assets of every discovered source, their staging models, checks,
schedules and the executor. :mod:`oso_dagster.definitions` is the module Dagster loads; this builds its ``defs``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dagster import AssetChecksDefinition, Definitions

from oso_dagster.location import dbt_manifest, dbt_project
from oso_dagster.location.asset_checks import (
    freshness_checks,
    freshness_sensor,
    row_count_checks,
    staging_left_out_check,
)
from oso_dagster.location.dbt_assets import DBT_RESOURCE_KEY, build_staging_assets, dbt_resource
from oso_dagster.location.discovery import Discovery, discover
from oso_dagster.location.entry_points import same_distribution
from oso_dagster.location.execution import executor_for, sync_schedule
from oso_dagster.settings import Settings

_log = logging.getLogger("oso_dagster")


def build_definitions(
    settings: Settings | None = None,
    discovery: Discovery | None = None,
    manifest_job: dbt_manifest.ManifestJob | None = None,
) -> Definitions:
    """Replication assets of every installed source package, plus their staging models (one step per package).

    A package whose staging models dbt cannot parse loads without them; it is logged and its tables get a
    failing ``staging_models_parse`` check that carries dbt's error.
    """
    settings = settings or Settings.from_env()
    discovery = discovery or discover()
    assets = [a for package in discovery.packages for a in package.assets]
    sources = [s for package in discovery.packages for s in package.sources]
    fresh = [check for source in sources for check in freshness_checks(source)]
    counts = [check for source in sources if (check := row_count_checks(source, settings)) is not None]
    sensor = freshness_sensor(fresh)
    resources: dict[str, object] = {}
    left_out: list[AssetChecksDefinition] = []
    job = manifest_job or dbt_manifest.start(settings, discovery.dbt_packages)
    staging = job.result()
    if staging is not None:
        assets.extend(build_staging_assets(staging.manifest, settings))
        resources[DBT_RESOURCE_KEY] = dbt_resource(settings.dbt_dir)
        left_out = _report_left_out(staging.broken, discovery)
    return Definitions(
        assets=assets,
        asset_checks=[*fresh, *counts, *left_out],
        schedules=[sync_schedule(source.name, source.options.schedule, settings) for source in sources
                   if source.options.schedule],
        sensors=[sensor] if sensor else [],
        resources=resources,
        executor=executor_for(settings),
    )


def _report_left_out(
    broken: Sequence[dbt_project.BrokenDbtPackage], discovery: Discovery
) -> list[AssetChecksDefinition]:
    """Log each package whose staging models were left out, and give its tables a failing check saying why."""
    checks: list[AssetChecksDefinition] = []
    for package in broken:
        _log.warning(package.message)
        for found in discovery.packages:
            if same_distribution(found.distribution, package.distribution):
                checks.extend(staging_left_out_check(source, package.message) for source in found.sources)
    return checks

