"""How sources run, shared by the code location (:mod:`.definitions`) and the ``dg`` component (:mod:`.component`):
the per-source sync schedule and the executor the warehouse allows. Light: imports Dagster and settings only.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ExecutorDefinition,
    ScheduleDefinition,
    in_process_executor,
    multiprocess_executor,
)

from oso_dagster.settings import Settings


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


def executor_for(settings: Settings) -> ExecutorDefinition:
    """DuckDB takes one writer per file, so local runs execute their steps one after another in one process
    (no per-step interpreter start-up either); BigQuery runs steps in parallel processes."""
    return in_process_executor if settings.destination == "duckdb" else multiprocess_executor
