"""One CDC sync of a source's tables, run inside its replication step (the steps: see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import dlt
import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, MaterializeResult
from dlt.common.schema import Schema
from sqlalchemy.engine import Engine

from oso_dagster.errors import ConfigurationError, OsoDagsterError
from oso_dagster.factories.config import SqlSource
from oso_dagster.factories.sql import CDC_CHECK_NAME
from oso_dagster.factories.translator import asset_key
from oso_dagster.naming import NAMING_MODULE
from oso_dagster.run import chunked_snapshot, load_duckdb
from oso_dagster.run.cdc import apply, state
from oso_dagster.run.cdc.changes import ChangePage, TableChanges, TableName
from oso_dagster.run.metadata import TableLoad, table_metadata, warehouse_row_counts
from oso_dagster.run.step_log import StepSummary
from oso_dagster.run.table_reader import TablePlan, table_resource

PAGE_CHANGES = 50_000  # row changes per page applied to DuckDB: bounds memory and the work a kill repeats


class ChangeLog(Protocol):
    """What a sync needs of a database's change log (:mod:`.postgres`, :mod:`.mysql`)."""

    kind: str

    def start(self, tables: Sequence[TableName], stored: dict[str, Any] | None
              ) -> tuple[dict[str, Any], set[TableName]]: ...
    def end(self) -> dict[str, Any]: ...
    def pages(self, start: dict[str, Any], end: dict[str, Any], keys: Mapping[TableName, Sequence[str]],
              max_changes: int | None) -> Iterator[ChangePage]: ...
    def acknowledge(self, position: dict[str, Any]) -> None: ...
    def retention(self, stored: state.CdcState) -> tuple[bool, str, dict[str, Any]]: ...


@dataclass
class _Totals:
    upserted: int = 0
    deleted: int = 0
    truncated: bool = False
    snapshot_rows: int | None = None
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)


def sync(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, url: str, source: SqlSource,
    plans: Sequence[TablePlan], selected: set[str], summary: StepSummary, broken: list[OsoDagsterError],
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Snapshot the selected tables not copied yet, then apply the log up to its current end; yield one
    materialization per selected table and the source's retention check.

    ``plans`` are all CDC tables of the source and ``selected`` the landing names this run materializes. The
    log is the source's, so changes of every snapshotted table are applied, selected or not (skipping them
    would lose them); a table copied for the first time must be selected. Tables that cannot be followed (no
    primary key) go to ``broken`` when selected and are left out, so the others still sync.
    """
    started = time.monotonic()
    log = change_log(engine, url, source)
    followed = []
    for plan in plans:
        problem = key_problem(plan)
        if problem is None:
            followed.append(plan)
        elif plan.config.landing_name in selected:
            context.log.error(f"{plan.config.qualified_name}: skipped in this run: {problem}")
            broken.append(ConfigurationError(problem))
    if not any(plan.config.landing_name in selected for plan in followed):
        return
    default_schema = sa.inspect(engine).default_schema_name or ""  # one query, not one per table
    names = {(plan.table.schema or default_schema, plan.table.name): plan for plan in followed}
    stored = state.read(pipeline)
    retention = log.retention(stored) if stored.position is not None else None  # before this sync reads
    position, unrecorded = log.start(list(names), stored.position)
    if retention is None:  # the first sync: what the new slot or position holds now
        retention = log.retention(state.CdcState(position=position))
    load_duckdb.ensure_dataset(pipeline)
    schema = Schema(source.name, normalizers={"names": NAMING_MODULE})
    grown = _with_new_columns(context, pipeline, [p for p in followed if p.config.landing_name in stored.snapshotted],
                              schema)
    with _state_writer(pipeline) as client:
        state.ensure(client)
        if stored.position is None:
            state.save_position(client, position)
        # copied again: a table left out of CDC (or out of the publication) meanwhile missed changes; one with a
        # new column has values the log never carried (the default an ADD COLUMN gives every existing row)
        kept = {plan.config.landing_name for name, plan in names.items()
                if name not in unrecorded and plan.config.landing_name not in grown}
        for landing in stored.snapshotted - kept:
            state.forget_in(client, landing)
            stored.snapshotted.discard(landing)
    new = [plan for plan in followed
           if plan.config.landing_name not in stored.snapshotted and plan.config.landing_name in selected]
    totals = {plan.config.landing_name: _Totals() for plan in followed}
    totals.update(_snapshots(context, pipeline, engine, new, schema, position))
    stored.snapshotted.update(plan.config.landing_name for plan in new)
    names = {name: plan for name, plan in names.items() if plan.config.landing_name in stored.snapshotted}
    end = log.end()
    changes = _catch_up(context, pipeline, engine, source.name, log, position, end, names, schema, totals)
    with _state_writer(pipeline) as client:
        state.save_position(client, end)
    log.acknowledge(end)
    seconds = time.monotonic() - started
    context.log.info(f"{source.name}: change log read to {_where(end)}: {changes:,} change(s) in {seconds:.1f}s "
                     f"({log.kind})")
    also = sorted(landing for landing, total in totals.items()
                  if landing not in selected and (total.upserted or total.deleted or total.truncated))
    if also:
        context.log.info(f"{source.name}: changes also applied to {', '.join(also)} (not selected; the change log "
                         "is read once for the whole source)")
    reported = [plan for plan in followed if plan.config.landing_name in selected]
    yield from _results(context, pipeline, source, reported, totals, seconds, log.kind, end, summary)
    yield from _check(context, source, retention)


def _with_new_columns(context: AssetExecutionContext, pipeline: dlt.Pipeline, plans: Sequence[TablePlan],
                      schema: Schema) -> set[str]:
    """Landing tables whose source has a column the warehouse table lacks."""
    grown = set()
    for plan in plans:
        landed = _landed_columns(pipeline, plan.config.landing_name)
        added = [c.name for c in plan.table.columns if schema.naming.normalize_identifier(c.name) not in landed]
        if landed and added:
            context.log.info(f"{plan.config.qualified_name}: column(s) {', '.join(added)} added in the source; "
                             "copying the table again (the change log does not carry existing rows' values)")
            grown.add(plan.config.landing_name)
    return grown


def _catch_up(
    context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, source_name: str, log: ChangeLog,
    position: dict[str, Any], end: dict[str, Any], names: Mapping[TableName, TablePlan], schema: Schema,
    totals: dict[str, _Totals],
) -> int:
    """Apply the log from ``position`` to ``end``: page by page into DuckDB (each page acknowledged once
    committed), or gathered into one dlt load for other warehouses (:mod:`.apply_dlt`); the changes read."""
    keys = {name: list(plan.primary_key or ()) for name, plan in names.items()}
    direct = _is_duckdb(pipeline)
    gathered: dict[TableName, TableChanges] = {}
    changes = 0
    # DuckDB: pages of about PAGE_CHANGES, each committed and acknowledged; else all at once, one load
    for page in log.pages(position, end, keys, PAGE_CHANGES if direct else None):
        changes += page.changes
        if not direct:
            for name, found in page.tables.items():
                if name in names:
                    into = gathered.setdefault(name, TableChanges())
                    into.keys |= found.keys
                    into.truncated = into.truncated or found.truncated
            continue
        fetched = {name: apply.fetch(engine, names[name], found, schema)
                   for name, found in page.tables.items() if name in names}
        applied = apply.apply_page(pipeline, page, fetched)
        log.acknowledge(page.end)
        _add(totals, applied)
        for done in fetched.values():
            totals[done.plan.config.landing_name].columns.update({c["name"]: c for c in done.columns.values()})
        context.log.info(f"{source_name}: applied {page.changes:,} change(s) up to {_where(page.end)}")
    if gathered:
        from oso_dagster.run.cdc import apply_dlt

        _add(totals, apply_dlt.apply_changes(
            pipeline, engine, [(names[name], found) for name, found in gathered.items()], schema))
        context.log.info(f"{source_name}: merged {changes:,} change(s) into {len(gathered)} table(s) with dlt")
    return changes


def _add(totals: dict[str, _Totals], applied: Mapping[str, apply.Applied]) -> None:
    for landing, done in applied.items():
        total = totals[landing]
        total.upserted += done.upserted
        total.deleted += done.deleted
        total.truncated = total.truncated or done.truncated


def _landed_columns(pipeline: dlt.Pipeline, landing: str) -> dict[str, dict[str, Any]]:
    if _is_duckdb(pipeline):
        return load_duckdb.landed_columns(pipeline, landing)
    return {name: dict(column) for name, column in pipeline.default_schema.get_table_columns(landing).items()}


def _is_duckdb(pipeline: dlt.Pipeline) -> bool:
    return bool(pipeline.destination.destination_name == "duckdb")


@contextmanager
def _state_writer(pipeline: dlt.Pipeline) -> Iterator[Any]:
    """A client writing the CDC state: in one transaction on DuckDB; BigQuery runs each statement alone."""
    with pipeline.sql_client() as client:
        if _is_duckdb(pipeline):
            with client.begin_transaction():
                yield client
        else:
            yield client


def _snapshots(context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, plans: Sequence[TablePlan],
               schema: Schema, position: dict[str, Any]) -> dict[str, _Totals]:
    """First copies, taken after the log position their changes are applied from: DuckDB's direct load per
    table, or one dlt ``replace`` load of them all."""
    if not plans:
        return {}
    if _is_duckdb(pipeline):
        return {plan.config.landing_name: _snapshot(context, pipeline, engine, plan, schema, position)
                for plan in plans}
    from oso_dagster.run.cdc import apply_dlt

    context.log.info(f"first CDC sync of {', '.join(p.config.qualified_name for p in plans)}: copying with dlt")
    rows = apply_dlt.snapshot(pipeline, engine, plans, schema)
    with _state_writer(pipeline) as client:
        for plan in plans:
            state.mark_snapshotted(client, plan.config.landing_name, position)
    return {landing: _Totals(snapshot_rows=count) for landing, count in rows.items()}


def change_log(engine: Engine, url: str, source: SqlSource) -> ChangeLog:
    from oso_dagster.run.cdc import logs

    dialect = engine.dialect.name
    if dialect == "postgresql":
        return logs.PostgresLog(engine, source)
    if dialect in ("mysql", "mariadb"):
        return logs.MysqlLog(engine, url, source)
    raise ConfigurationError(
        f"Source {source.name!r} has cdc=True, but CDC reads PostgreSQL's and MySQL/MariaDB's change logs and this "
        f"database is {dialect}. Remove cdc=True: its tables are then copied by cursor or in full."
    )


def key_problem(plan: TablePlan) -> str | None:
    """Why a table cannot be followed by key: no primary key, or a configured key that is not the table's."""
    name = plan.config.qualified_name
    reflected = tuple(c.name for c in plan.table.primary_key.columns)
    leave_out = 'or add "cdc": False to its entry in sql_assets to copy it without CDC'
    if not reflected:
        return (f"Table {name!r} has no primary key, and CDC applies changes by key. Add one "
                f"(ALTER TABLE {name} ADD PRIMARY KEY (...)), {leave_out}.")
    if plan.config.primary_key and tuple(plan.config.primary_key) != reflected:
        return (f"Table {name!r}: CDC follows rows by the table's primary key {list(reflected)}; remove the "
                f"primary_key {list(plan.config.primary_key)} from its entry, {leave_out}.")
    return None


def _snapshot(context: AssetExecutionContext, pipeline: dlt.Pipeline, engine: Engine, plan: TablePlan,
              schema: Schema, position: dict[str, Any]) -> _Totals:
    """The first copy of a table, taken after the log position its changes are applied from."""
    name = plan.config.qualified_name
    context.log.info(f"{name}: first CDC sync, copying the table; changes from {_where(position)} follow")
    load: load_duckdb.DirectLoad | None = chunked_snapshot.load_if_large(
        pipeline, engine, plan, schema, lambda e, p, where: table_resource(e, p, where, with_cursor=False),
        context.log.info)
    if load is None:
        load = load_duckdb.load_table(pipeline, table_resource(engine, plan, with_cursor=False),
                                      plan.config.landing_name, schema)
    with _state_writer(pipeline) as client:
        state.mark_snapshotted(client, plan.config.landing_name, position)
    context.log.info(f"{name}: {load.rows:,} rows copied in {load.seconds:.1f}s")
    return _Totals(snapshot_rows=load.rows, columns=dict(load.columns))


def _results(context: AssetExecutionContext, pipeline: dlt.Pipeline, source: SqlSource, plans: Sequence[TablePlan],
             totals: dict[str, _Totals], seconds: float, kind: str, end: dict[str, Any], summary: StepSummary
             ) -> Iterator[MaterializeResult]:
    counts = warehouse_row_counts(pipeline, [p.config.landing_name for p in plans])
    for plan in plans:
        landing = plan.config.landing_name
        total = totals[landing]
        rows = (total.snapshot_rows or 0) + total.upserted
        load = TableLoad(table=landing, cursor=None, rows_loaded=rows, seconds=seconds, loader=f"cdc ({kind})",
                         backend=plan.backend, write_disposition="merge", row_count=counts.get(landing))
        columns = total.columns or _landed_columns(pipeline, landing)
        metadata = table_metadata(pipeline, load, columns)
        metadata.update({
            "rows_upserted": total.upserted, "rows_deleted": total.deleted, "truncated": total.truncated,
            "snapshot": total.snapshot_rows is not None, "cdc_position": _where(end),
        })
        if total.snapshot_rows is not None:
            metadata["snapshot_rows"] = total.snapshot_rows
        summary.table(context.log, plan.config.qualified_name, rows, seconds, f"cdc, {kind}")
        metadata["summary"] = (f"cdc ({kind}): " + (f"snapshot of {total.snapshot_rows:,} rows, then " if
                               total.snapshot_rows is not None else "") + f"{total.upserted:,} row(s) upserted, "
                               f"{total.deleted:,} deleted{', truncated' if total.truncated else ''}")
        yield MaterializeResult(asset_key=asset_key(source.name, plan.config), metadata=metadata)


def _check(context: AssetExecutionContext, source: SqlSource,
           retention: tuple[bool, str, dict[str, Any]]) -> Iterator[AssetCheckResult]:
    """The source's log-retention check, on its first CDC table (where the factory declared it)."""
    key = asset_key(source.name, next(c for c in source.tables if c.cdc))
    selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
    if (key, CDC_CHECK_NAME) not in selected:
        return
    passed, description, metadata = retention
    yield AssetCheckResult(asset_key=key, check_name=CDC_CHECK_NAME, passed=passed, description=description,
                           metadata=metadata, severity=AssetCheckSeverity.ERROR)


def _where(position: dict[str, Any]) -> str:
    return ":".join(str(v) for v in position.values())
