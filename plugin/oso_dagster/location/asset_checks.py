"""Asset checks for replicated tables: freshness of the last load, row counts against the source, and (only
for a package whose dbt models do not parse) a check that reports that its staging models were left out.

They are built from the ``sql_assets`` configuration at definitions load and do their I/O only when they
run (after each sync, as part of the source's job, or from the freshness sensor).
"""


import time
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    JsonMetadataValue,
    SensorDefinition,
    TimestampMetadataValue,
    build_sensor_for_freshness_checks,
    multi_asset_check,
)

from oso_dagster.factories.config import SqlSource, TableConfig
from oso_dagster.factories.translator import asset_key
from oso_dagster.settings import Settings

ROW_COUNT_CHECK = "row_count_matches_source"
STAGING_CHECK = "staging_models_parse"


def freshness_checks(source: SqlSource) -> list[AssetChecksDefinition]:
    """Last-update freshness checks, one multi-check per distinct ``freshness_hours``.

    Built like Dagster's ``build_last_update_freshness_checks`` (same check names, specs and result metadata,
    so Dagster's freshness sensor drives them), but each evaluation reads the latest materialization of all its
    tables in one event-log query instead of two per table: 10.4 s for 200 tables became well under a second
    (docs/benchmarks.md).
    """
    by_hours: dict[float, list] = defaultdict(list)
    for table in source.tables:
        if table.freshness_hours:
            by_hours[float(table.freshness_hours)].append(asset_key(source.name, table))
    return [_freshness_check(keys, timedelta(hours=hours)) for hours, keys in sorted(by_hours.items())]


def _freshness_check(keys: Sequence[AssetKey], lower_bound: timedelta) -> AssetChecksDefinition:
    # Dagster's own decorator and metadata keys (private modules, pinned Dagster): what its freshness
    # sensor recognises and reads (fresh_until) to schedule the next evaluation
    from dagster._core.definitions.asset_checks.asset_check_factories.utils import (
        FRESH_UNTIL_METADATA_KEY,
        FRESHNESS_PARAMS_METADATA_KEY,
        LAST_UPDATED_TIMESTAMP_METADATA_KEY,
        LOWER_BOUND_DELTA_PARAM_KEY,
        LOWER_BOUND_TIMESTAMP_METADATA_KEY,
        TIMEZONE_PARAM_KEY,
        freshness_multi_asset_check,
    )

    params = JsonMetadataValue({TIMEZONE_PARAM_KEY: "UTC", LOWER_BOUND_DELTA_PARAM_KEY: lower_bound.total_seconds()})

    @freshness_multi_asset_check(params_metadata=params, asset_keys=list(keys), blocking=False)
    def _fresh(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        selected = [check_key.asset_key for check_key in context.selected_asset_check_keys]
        latest = context.instance.get_latest_materialization_events(selected)
        now = time.time()
        bound = now - lower_bound.total_seconds()
        for key in selected:
            entry = latest.get(key)
            updated = entry.timestamp if entry is not None else None
            passed = updated is not None and updated >= bound
            metadata: dict[str, Any] = {
                FRESHNESS_PARAMS_METADATA_KEY: params,
                LOWER_BOUND_TIMESTAMP_METADATA_KEY: TimestampMetadataValue(bound),
            }
            if updated is not None:
                metadata[LAST_UPDATED_TIMESTAMP_METADATA_KEY] = TimestampMetadataValue(updated)
            if passed and updated is not None:
                metadata[FRESH_UNTIL_METADATA_KEY] = TimestampMetadataValue(updated + lower_bound.total_seconds())
            yield AssetCheckResult(
                asset_key=key, passed=passed, severity=AssetCheckSeverity.WARN, metadata=metadata,
                description=_freshness_text(passed, updated, now, lower_bound),
            )

    return _fresh


def _freshness_text(passed: bool, updated: float | None, now: float, lower_bound: timedelta) -> str:
    if updated is None:
        return "Asset has never been materialized."
    ago = timedelta(seconds=round(now - updated))
    if passed:
        return f"Asset is currently fresh. The last update was {ago} ago, within the allowed {lower_bound}."
    return f"Asset is overdue. The last update was {ago} ago, more than the allowed {lower_bound}."


def freshness_sensor(checks: Sequence[AssetChecksDefinition]) -> SensorDefinition | None:
    """Evaluates freshness between syncs too (stopped by default, like every Dagster sensor)."""
    if not checks:
        return None
    with warnings.catch_warnings():  # the builder is marked preview; the warning says nothing actionable
        warnings.simplefilter("ignore")
        return build_sensor_for_freshness_checks(freshness_checks=list(checks), name="oso_freshness_checks")


def row_count_checks(source: SqlSource, settings: Settings) -> AssetChecksDefinition | None:
    """Source ``count(*)`` vs warehouse ``count(*)`` for each full-refresh table, within its tolerance.

    ``settings`` are the code location's, read once when it loaded (in the run's own process too).
    """
    tables = [t for t in source.tables if t.write_disposition == "replace"]
    if not tables:
        return None
    by_key = {asset_key(source.name, t): t for t in tables}
    specs = [
        AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=key,
            description=f"Row count equals the source's within {t.row_count_tolerance:.1%} (full-refresh table).",
        )
        for key, t in by_key.items()
    ]

    @multi_asset_check(specs=specs, name=f"{source.name}_row_counts", can_subset=True)
    def _row_counts(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        selected = [by_key[check_key.asset_key] for check_key in context.selected_asset_check_keys]
        yield from _compare_counts(source, selected, settings)

    return _row_counts


def _compare_counts(source: SqlSource, tables: Sequence[TableConfig], settings: Settings) -> Iterator[AssetCheckResult]:
    from oso_dagster.run.failures import reported_as_failure

    secrets: list[str] = []
    with reported_as_failure(f"Counting the rows of source {source.name!r}", secrets):
        yield from _count_and_compare(source, tables, settings, secrets)


def _count_and_compare(
    source: SqlSource, tables: Sequence[TableConfig], settings: Settings, secrets: list[str]
) -> Iterator[AssetCheckResult]:
    import sqlalchemy as sa

    from oso_dagster.database import create_source_engine, database_error, reflect_table
    from oso_dagster.utils.secrets import resolver_from_settings
    from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline, warehouse_write_lock

    secrets.append(resolver_from_settings(settings).resolve(source.secret).reveal())
    engine = create_source_engine(secrets[0])
    try:
        source_counts: dict[str, int] = {}
        with engine.connect() as conn:
            for table in tables:
                reflected = reflect_table(engine, table.table, table.schema)
                try:
                    count = sa.select(sa.func.count()).select_from(reflected)
                    source_counts[table.landing_name] = int(conn.execute(count).scalar_one())
                except Exception as exc:
                    raise database_error(exc, engine, f"counting rows of {table.qualified_name!r}") from None
    finally:
        engine.dispose()
    warehouse_counts: dict[str, int | None] = {}
    pipeline = make_pipeline(settings, source.name)
    with warehouse_write_lock(settings), dlt_environment(settings), pipeline.sql_client() as client:
        for table in tables:
            name = client.make_qualified_table_name(table.landing_name)
            try:
                rows = client.execute_sql(f"SELECT count(*) FROM {name}")  # name quoted by dlt
                warehouse_counts[table.landing_name] = int(rows[0][0]) if rows else 0
            except Exception:
                warehouse_counts[table.landing_name] = None
    for table in tables:
        expected = source_counts[table.landing_name]
        actual = warehouse_counts[table.landing_name]
        allowed = int(expected * table.row_count_tolerance)
        passed = actual is not None and abs(expected - actual) <= allowed
        yield AssetCheckResult(
            asset_key=asset_key(source.name, table),
            check_name=ROW_COUNT_CHECK,
            passed=passed,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "source_rows": expected,
                "warehouse_rows": -1 if actual is None else actual,
                "allowed_difference": allowed,
            },
            description=None if passed else (
                f"{table.qualified_name}: source has {expected} rows, warehouse "
                f"{'has no table' if actual is None else f'has {actual}'} (allowed difference {allowed}). "
                "Run a sync; if it persists, rows are being lost or the table changes faster than it syncs."
            ),
        )


def staging_left_out_check(source: SqlSource, message: str) -> AssetChecksDefinition:
    """Fails on every table of ``source`` with dbt's error: keeps a package's unparseable models in sight."""
    keys = [asset_key(source.name, table) for table in source.tables]
    summary = f"Staging models of source `{source.name}` are left out: dbt cannot parse them (see the result)."
    specs = [AssetCheckSpec(STAGING_CHECK, asset=key, description=summary) for key in keys]

    @multi_asset_check(specs=specs, name=f"{source.name}_staging_models", can_subset=True)
    def _left_out(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        for check_key in context.selected_asset_check_keys:
            yield AssetCheckResult(asset_key=check_key.asset_key, check_name=STAGING_CHECK, passed=False,
                                   severity=AssetCheckSeverity.ERROR, description=message,
                                   metadata={"dbt_error": message})

    return _left_out
