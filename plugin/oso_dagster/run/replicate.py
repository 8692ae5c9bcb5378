"""What a replication run does, after Dagster starts it: resolve the secret, reflect, read, load.

Kept apart from :mod:`oso_dagster.factories.sql` so that loading definitions imports none of this.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import dlt
from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult
from dagster_dlt import DagsterDltResource
from dlt.common.schema import Schema
from dlt.extract.exceptions import ResourceExtractionError
from sqlalchemy.engine import Engine

from oso_dagster.database import create_source_engine
from oso_dagster.errors import OsoDagsterError, SourceDatabaseError
from oso_dagster.factories.config import SqlSource, TableConfig
from oso_dagster.factories.translator import OsoDltTranslator, asset_key, table_asset_spec
from oso_dagster.naming import NAMING_MODULE, mode_label
from oso_dagster.run import chunked_snapshot, first_load, load_duckdb
from oso_dagster.run.deletes import reconcile_deletes
from oso_dagster.run.failures import reported_as_failure, unwrap_dlt_error
from oso_dagster.run.load_duckdb import DirectLoad, loads_directly
from oso_dagster.run.metadata import TableLoad, table_metadata, warehouse_row_counts
from oso_dagster.run.schema_changes import schema_change_message
from oso_dagster.run.skip_unchanged import SkipState
from oso_dagster.run.step_log import StepSummary, demote_dlt_hint_warnings
from oso_dagster.run.table_reader import (
    TablePlan,
    build_dlt_source,
    explain_read_error,
    plan_tables,
    table_resource,
)
from oso_dagster.settings import Settings
from oso_dagster.utils.secrets import resolver_from_settings
from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline, warehouse_write_lock


def replicate(
    context: AssetExecutionContext, source: SqlSource, settings: Settings
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Replicate the selected tables of ``source``; failures become clear ``dagster.Failure``s."""
    secrets: list[str] = []
    with reported_as_failure(
        f"Replicating source {source.name!r}", secrets, lambda error: schema_change_message(source, error)
    ):
        url = resolver_from_settings(settings).resolve(source.secret).reveal()
        secrets.append(url)
        yield from _replicate(context, source, settings, url)


def _replicate(
    context: AssetExecutionContext, source: SqlSource, settings: Settings, url: str
) -> Iterator[MaterializeResult | AssetCheckResult]:
    started = time.monotonic()
    demote_dlt_hint_warnings()
    engine = create_source_engine(url)
    selected = context.selected_asset_keys
    configs = [config for config in source.tables if asset_key(source.name, config) in selected]
    pipeline = make_pipeline(settings, source.name)
    summary = StepSummary()
    # CDC tables (run/cdc): the log is the source's, so every CDC table is followed, the selected reported
    followed = [config for config in source.tables if config.cdc] if any(c.cdc for c in configs) else []
    cdc_selected = {config.landing_name for config in configs if config.cdc}
    configs = [config for config in configs if not config.cdc]
    # unchanged merged tables cost one query each and nothing more (oso_dagster.run.skip_unchanged)
    skip = _unchanged_tables(context, pipeline, engine, source, configs)
    configs = [c for c in configs if c not in skip.unchanged]
    if skip.unchanged:
        summary.skipped(len(skip.unchanged))
        with warehouse_write_lock(settings):
            yield from _report_unchanged(pipeline, source, skip.unchanged)
    plans, broken = plan_tables(context, engine, configs, settings.destination) if configs else ([], [])
    broken = list(broken)
    for plan in plans:
        context.log.debug(
            f"{plan.config.qualified_name}: backend={plan.backend}, "
            f"{mode_label(plan.config.cursor_column)}"
            f"{', lossless casts: ' + ', '.join(plan.casts) if plan.casts else ''}"
            f"{', as JSON text: ' + ', '.join(sorted(plan.json_text)) if plan.json_text else ''}"
        )
    destination = settings.destination
    direct = [p for p in plans if _loads_directly(destination, p)]
    via_dlt = [p for p in plans if not _loads_directly(destination, p)]
    failed: list[BaseException] = []  # direct loads (and CDC) that failed; raised once the other tables landed
    with warehouse_write_lock(settings), dlt_environment(settings, source.options.concurrency):
        if direct:
            yield from _load_direct_tables(context, pipeline, engine, source, direct, failed, summary)
        via_dlt, first_loads = _first_loads(context, pipeline, engine, source.name, destination, via_dlt)
        if via_dlt:
            yield from _load_with_dlt(
                context, pipeline, engine, source, settings, via_dlt, started, summary, first_loads
            )
            dlt_state = pipeline.state
            skip.remember(via_dlt, lambda config: _cursor_value(pipeline, source.name, config, dlt_state))
        if followed:  # last: a change log that cannot be read fails the step after the other tables landed
            try:
                yield from _sync_changes(context, pipeline, engine, url, source, followed, cdc_selected, summary,
                                         broken)
            except Exception as exc:
                failed.append(exc)
    summary.failed = len(failed) + len(broken)
    context.log.info(summary.text(source.name, time.monotonic() - started))
    if failed:
        raise failed[0]
    if broken:  # the other tables landed; the step still fails, naming what did not
        raise SourceDatabaseError(" ".join(str(exc) for exc in broken))


def _sync_changes(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, url: str, source: SqlSource,
    configs: Sequence[TableConfig], selected: set[str], summary: StepSummary, broken: list[OsoDagsterError],
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """The CDC tables (:mod:`oso_dagster.run.cdc`); a problem of a selected CDC table goes to ``broken``
    (reported once the other tables landed)."""
    from oso_dagster.run.cdc import sync

    plans, unplanned = plan_tables(context, engine, configs, pipeline.destination.destination_name,
                                   selected=lambda config: config.landing_name in selected, require_one=False)
    broken.extend(unplanned)
    with _explaining_read_errors(engine, plans):
        yield from sync.sync(context, pipeline, engine, url, source, plans, selected, summary, broken)


def _loads_directly(destination: str, plan: TablePlan) -> bool:
    config = plan.config
    return loads_directly(destination, config.write_disposition, plan.backend, config.incremental is not None)


def _load_with_dlt(
    context: AssetExecutionContext,
    pipeline: dlt.Pipeline,
    engine: Engine,
    source: SqlSource,
    settings: Settings,
    plans: Sequence[TablePlan],
    started: float,
    summary: StepSummary,
    first_loads: Mapping[str, DirectLoad] | None = None,
) -> Iterator[MaterializeResult]:
    """Run dlt's pipeline (extract, normalize, load files) for the tables that need its merge or formats."""
    destination = settings.destination
    dlt_source = build_dlt_source(source.name, engine, plans)
    translator = OsoDltTranslator(
        {p.config.landing_name: table_asset_spec(source.name, p.config, destination, source.secret.label)
         for p in plans}
    )
    state_before = pipeline.state
    cursors_before = {p.config.landing_name: _cursor_value(pipeline, source.name, p.config, state_before)
                      for p in plans}
    with _explaining_read_errors(engine, plans):
        results = list(
            DagsterDltResource().run(
                context=context,
                dlt_source=dlt_source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=translator,
                loader_file_format="parquet",
            )
        )
    for plan in plans:
        if plan.config.reconcile_deletes:
            removed = reconcile_deletes(pipeline, engine, plan)
            context.log.info(f"{plan.config.qualified_name}: removed {removed} row(s) whose key is gone")
    elapsed = time.monotonic() - started
    by_key = {asset_key(source.name, p.config): p for p in plans}
    counts = warehouse_row_counts(pipeline, [p.config.landing_name for p in plans])
    # the schema as normalize stored it (the pipeline's in-memory copy still holds only the source's hints)
    schema = pipeline.schemas.load_schema(pipeline.default_schema.name)
    state_after = pipeline.state
    for result in results:
        assert result.asset_key is not None  # dagster-dlt names the asset of every result
        plan = by_key[result.asset_key]
        landing = plan.config.landing_name
        rows = (result.metadata or {}).get("rows_loaded")
        direct = (first_loads or {}).get(landing)
        load = TableLoad(
            table=landing, cursor=plan.config.cursor_column,
            # a direct first load: its rows (dlt's run re-read only those at the last cursor value)
            rows_loaded=direct.rows if direct else _as_int(rows), seconds=elapsed,
            loader="duckdb direct first load, then dlt" if direct else "dlt",
            backend=plan.backend, write_disposition=plan.config.write_disposition,
            cursor_from=cursors_before.get(landing),
            cursor_to=_cursor_value(pipeline, source.name, plan.config, state_after),
            row_count=counts.get(landing),
        )
        summary.table(context.log, plan.config.qualified_name, load.rows_loaded, elapsed, f"dlt, {plan.backend}")
        columns = schema.get_table_columns(landing) if landing in schema.tables else {}
        yield MaterializeResult(
            asset_key=result.asset_key, metadata=table_metadata(pipeline, load, columns, result.metadata)
        )


def _first_loads(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str, destination: str,
    plans: list[TablePlan],
) -> tuple[list[TablePlan], dict[str, DirectLoad]]:
    """Incremental tables with no state and no rows yet land directly (:mod:`oso_dagster.run.first_load`);
    returns the plans for dlt's run (those continuing from the cursor read) and the direct loads."""
    loads: dict[str, DirectLoad] = {}
    out: list[TablePlan] = []
    for plan in plans:
        if not first_load.applies(pipeline, source_name, plan, destination):
            out.append(plan)
            continue
        name = plan.config.qualified_name
        context.log.info(f"{name}: first sync, streaming the snapshot into DuckDB; dlt continues from its cursor")
        with _explaining_read_errors(engine, [plan]):
            done, continued = first_load.load(
                pipeline, engine, source_name, plan,
                progress=lambda rows, name=name: context.log.info(f"{name}: {rows:,} rows streamed"),
            )
        context.log.info(f"{name}: {done.rows:,} rows in {done.seconds:.1f}s, "
                         f"cursor from {continued.config.incremental.initial_value!r}")  # type: ignore[union-attr]
        loads[plan.config.landing_name] = done
        out.append(continued)
    return out, loads


def _load_direct_tables(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source: SqlSource,
    plans: Sequence[TablePlan], errors: list[BaseException], summary: StepSummary,
) -> Iterator[MaterializeResult]:
    """Load each table directly, ``concurrency`` at a time; a failed table (added to ``errors``) does not
    stop the others."""
    load_duckdb.ensure_dataset(pipeline)
    workers = min(source.options.concurrency, len(plans))
    if workers == 1:
        for plan in plans:
            try:
                yield _counted(_load_direct(context, pipeline, engine, source.name, plan), summary)
            except Exception as exc:
                errors.append(exc)
    else:
        for result in _load_direct_in_threads(context, pipeline, engine, source.name, plans, workers, errors):
            yield _counted(result, summary)


def _counted(result: MaterializeResult, summary: StepSummary) -> MaterializeResult:
    metadata = result.metadata or {}
    rows = metadata.get("rows_loaded")
    summary.loaded += 1
    summary.rows += _as_int(rows)
    return result


def _load_direct_in_threads(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str,
    plans: Sequence[TablePlan], workers: int, errors: list[BaseException],
) -> Iterator[MaterializeResult]:
    """Each table reads over its own source connection and writes in its own DuckDB transaction."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oso-direct-load") as pool:
        futures = [pool.submit(_load_direct, context, pipeline, engine, source_name, plan) for plan in plans]
        for future in futures:
            try:
                yield future.result()
            except Exception as exc:  # reported after the others landed, as planning errors are
                errors.append(exc)


def _load_direct(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str, plan: TablePlan
) -> MaterializeResult:
    """A full refresh streamed straight into DuckDB and swapped in (see :mod:`oso_dagster.run.load_duckdb`)."""
    name = plan.config.qualified_name
    started_at = datetime.now(UTC)
    context.log.debug(f"{name}: streaming into DuckDB, replacing the table in one transaction")
    schema = Schema(source_name, normalizers={"names": NAMING_MODULE})
    with _explaining_read_errors(engine, [plan]):
        # a large table in resumable chunks (run/chunked_snapshot.py); None: small, one transaction below
        load: load_duckdb.DirectLoad | None = chunked_snapshot.load_if_large(
            pipeline, engine, plan, schema, table_resource, context.log.info
        )
        if load is None:
            load = load_duckdb.load_table(
                pipeline,
                table_resource(engine, plan),
                plan.config.landing_name,
                schema,
                progress=lambda rows: context.log.info(f"{name}: {rows:,} rows streamed"),
            )
    context.log.info(f"{name}: {load.rows:,} rows in {load.seconds:.1f} s (duckdb direct, {plan.backend})")
    table_load = TableLoad(
        table=load.table, cursor=None, rows_loaded=load.rows, seconds=load.seconds, loader="duckdb direct",
        backend=plan.backend, write_disposition=plan.config.write_disposition, row_count=load.rows,
    )
    metadata = table_metadata(pipeline, table_load, load.columns)
    metadata.update(started_at=started_at.isoformat(), finished_at=datetime.now(UTC).isoformat())
    if isinstance(load, chunked_snapshot.ChunkedLoad):
        metadata.update(load.progress_metadata())
    return MaterializeResult(asset_key=asset_key(source_name, plan.config), metadata=metadata)


def _as_int(value: object) -> int:
    """dagster-dlt's ``rows_loaded``: an int, or a metadata value holding one."""
    raw = getattr(value, "value", value)
    return int(raw) if isinstance(raw, (int, float)) else 0


def _cursor_value(pipeline: dlt.Pipeline, source_name: str, config: TableConfig, state: Any = None) -> Any:
    """dlt's stored cursor of a table; pass ``state`` (``pipeline.state``, which re-reads and copies the
    state file on every access) when asking for many tables."""
    if not config.cursor_column:
        return None
    try:
        resources = (state if state is not None else pipeline.state)["sources"][source_name]["resources"]
        return resources[config.landing_name]["incremental"][config.cursor_column]["last_value"]
    except (KeyError, TypeError):
        return None


@contextlib.contextmanager
def _explaining_read_errors(engine: Engine, plans: Sequence[TablePlan]) -> Iterator[None]:
    """Re-raise a failed read as :func:`explain_read_error` puts it, for the table whose resource failed."""
    try:
        yield
    except Exception as exc:
        failed = _failed_resource(exc)
        plan = next((p for p in plans if p.config.landing_name == failed), plans[0] if len(plans) == 1 else None)
        inner = unwrap_dlt_error(exc)
        explained = explain_read_error(inner, engine, plan) if plan is not None else inner
        if explained is inner:
            raise
        raise explained from None


def _failed_resource(exc: BaseException) -> str | None:
    """The dlt resource (named by its landing table) whose extraction raised ``exc``, if dlt says."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ResourceExtractionError):
            return seen.pipe_name
        seen = getattr(seen, "exception", None) or seen.__cause__
    return None


def _unchanged_tables(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source: SqlSource,
    configs: Sequence[TableConfig],
) -> UnchangedTables:
    """Which merged incremental tables have nothing new (see :mod:`oso_dagster.run.skip_unchanged`)."""
    from oso_dagster.run import skip_unchanged

    candidates = skip_unchanged.candidates(configs)
    state = SkipState(pipeline.working_dir)
    if not candidates:
        return UnchangedTables(state, {}, {}, [])
    fingerprints, maxima = skip_unchanged.take_fingerprints(engine, candidates, source.options.concurrency)
    dlt_state = pipeline.state
    _, unchanged = skip_unchanged.split_unchanged(
        candidates, fingerprints, state, lambda c: _cursor_value(pipeline, source.name, c, dlt_state),
        pending=pipeline.has_pending_data,
    )
    if unchanged:
        context.log.debug(f"unchanged since the last sync: {', '.join(c.qualified_name for c in unchanged)}")
    return UnchangedTables(state, fingerprints, maxima, unchanged)


class UnchangedTables:
    """The skip decision of one step, and what to store once the other tables loaded."""

    def __init__(self, state: SkipState, fingerprints: dict[str, Any], maxima: dict[str, Any],
                 unchanged: list[TableConfig]) -> None:
        self.state, self.fingerprints, self.maxima, self.unchanged = state, fingerprints, maxima, unchanged

    def remember(self, plans: Sequence[TablePlan], cursor_of: Any) -> None:
        """After a successful dlt load: store each loaded table's fingerprint taken before it."""
        if not self.fingerprints and not self.state.entries:
            return
        for plan in plans:
            config = plan.config
            self.state.record(config, self.fingerprints.get(config.landing_name),
                              self.maxima.get(config.landing_name), cursor_of(config), config.reconcile_deletes)
        self.state.save()


def _report_unchanged(
    pipeline: dlt.Pipeline, source: SqlSource, configs: Sequence[TableConfig]
) -> Iterator[MaterializeResult]:
    """A materialization per unchanged table (the sync confirmed it current, so freshness holds), no load."""
    counts = warehouse_row_counts(pipeline, [c.landing_name for c in configs])
    destination = pipeline.destination.destination_name
    dlt_state = pipeline.state
    for config in configs:
        cursor = _cursor_value(pipeline, source.name, config, dlt_state)
        metadata: dict[str, Any] = {
            "summary": f"unchanged since the last sync ({mode_label(config.cursor_column)}, cursor at {cursor}): "
                       "one query, nothing loaded",
            "unchanged": True,
            "rows_loaded": 0,
            "cursor_value": str(cursor),
            "loader": "skipped (unchanged)",
            "dagster/table_name": f"{destination}.{pipeline.dataset_name}.{config.landing_name}",
        }
        if config.landing_name in counts:
            metadata["dagster/row_count"] = counts[config.landing_name]
        yield MaterializeResult(asset_key=asset_key(source.name, config), metadata=metadata)
