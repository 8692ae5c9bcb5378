"""Asset checks for replicated tables: freshness of the last load, row counts against the source, and (only
for a package whose dbt models do not parse) a check that reports that its staging models were left out.

They are built from the ``sql_assets`` configuration at definitions load and do their I/O only when they
run (after each sync, as part of the source's job, or from the freshness sensor).
"""


import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import timedelta

import sqlalchemy as sa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    SensorDefinition,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    multi_asset_check,
)

from oso_dagster.factories.config import SqlSource, TableConfig
from oso_dagster.factories.translator import asset_key
from oso_dagster.settings import Settings

ROW_COUNT_CHECK = "row_count_matches_source"
STAGING_CHECK = "staging_models_parse"


def freshness_checks(source: SqlSource) -> list[AssetChecksDefinition]:
    """Dagster's own last-update freshness checks, one bound per distinct ``freshness_hours``."""
    by_hours: dict[float, list] = defaultdict(list)
    for table in source.tables:
        if table.freshness_hours:
            by_hours[float(table.freshness_hours)].append(asset_key(source.name, table))
    with warnings.catch_warnings():
        # Dagster marks these checks superseded by FreshnessPolicy, which only its daemon evaluates;
        # a check runs inside the sync job itself and needs no daemon, which is what we want here.
        warnings.simplefilter("ignore")
        return [
            check
            for hours, keys in sorted(by_hours.items())
            for check in build_last_update_freshness_checks(assets=keys, lower_bound_delta=timedelta(hours=hours))
        ]


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
