"""The Dagster code location: ``dagster dev -m oso_dagster.definitions``.

Loading it discovers installed source packages and (re)uses the cached dbt manifest. It connects to
no database and resolves no secret; that happens when a run starts.

The manifest check comes first, before Dagster is imported: when the installed packages changed, ``dbt
parse`` then runs in the background while the rest of this module imports and discovers sources.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from oso_dagster import dbt_project
from oso_dagster.entry_points import installed_dbt_packages, same_distribution
from oso_dagster.settings import Settings


def _start_manifest(settings: Settings) -> dbt_project.ManifestJob:
    return dbt_project.start(settings, installed_dbt_packages())


_log = logging.getLogger("oso_dagster")
_settings = Settings.from_env()
_manifest_job = _start_manifest(_settings)

# Imported after the manifest job started so the two overlap (see the module docstring).
from dagster import (  # noqa: E402
    AssetChecksDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    in_process_executor,
    multiprocess_executor,
)

from oso_dagster.asset_checks import (  # noqa: E402
    freshness_checks,
    freshness_sensor,
    row_count_checks,
    staging_left_out_check,
)
from oso_dagster.dbt_assets import DBT_RESOURCE_KEY, build_staging_assets, dbt_resource  # noqa: E402
from oso_dagster.discovery import Discovery, discover  # noqa: E402


def build_definitions(
    settings: Settings | None = None,
    discovery: Discovery | None = None,
    manifest_job: dbt_project.ManifestJob | None = None,
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
    counts = [check for source in sources if (check := row_count_checks(source)) is not None]
    sensor = freshness_sensor(fresh)
    resources = {}
    left_out: list[AssetChecksDefinition] = []
    job = manifest_job or dbt_project.start(settings, discovery.packages)
    staging = job.result()
    if staging is not None:
        assets.extend(build_staging_assets(staging.manifest))
        resources[DBT_RESOURCE_KEY] = dbt_resource(settings.dbt_dir)
        left_out = _report_left_out(staging.broken, discovery)
    # DuckDB takes one writer per file, so local runs execute their steps one after another in one
    # process (no per-step interpreter start-up either); BigQuery runs steps in parallel processes.
    executor = in_process_executor if settings.destination == "duckdb" else multiprocess_executor
    return Definitions(
        assets=assets,
        asset_checks=[*fresh, *counts, *left_out],
        schedules=[sync_schedule(source.name, source.options.schedule, settings) for source in sources
                   if source.options.schedule],
        sensors=[sensor] if sensor else [],
        resources=resources,
        executor=executor,
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


def sync_schedule(name: str, cron: str, settings: Settings) -> ScheduleDefinition:
    """One schedule per source: replicate its tables, then build its staging models (the same group).

    Stopped by default, as Dagster schedules are; ``OSO_SCHEDULES=running`` starts them all.
    """
    status = DefaultScheduleStatus.RUNNING if settings.schedules_running else DefaultScheduleStatus.STOPPED
    return ScheduleDefinition(
        name=f"sync_{name}",
        cron_schedule=cron,
        target=AssetSelection.groups(name),
        default_status=status,
        description=f"Replicate source `{name}` and build its staging models.",
    )


defs = build_definitions(_settings, manifest_job=_manifest_job)
