"""Re-create a staging view only when it changed: its SQL, its dbt config, or the columns of what it reads.

A view reads its table live, so new rows never need it re-created; yet ``dbt build`` re-creates every view
each sync (201 views took 31.6 s in issue 16). Before ``dbt build``, each selected view's *digest* (the
model's checksum, config and relation, dbt's version, and the warehouse columns of each table it reads) is
compared with the digest stored, after its last successful build, in the small table
``<staging schema>._oso_staging_state``; a view whose digest matches and which still exists in the
warehouse catalog is left alone. Why the warehouse and not dbt's ``state:modified``: ``state:modified``
compares two manifests, so it needs the previous run's artifacts kept somewhere every run can read, and it
cannot see what happened in the warehouse: a column added or dropped by replication (which changes what
``select *`` style staging returns), or a view dropped by hand. The catalog answers both, in one query.

Models materialized as anything but a view (tables, incremental models) always build: their data changes.
``OSO_REBUILD_STAGING=1`` or the run tag ``oso/rebuild_staging=true`` rebuilds every selected model.
Only the DuckDB warehouse keeps the state for now; on BigQuery every model builds, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from dagster import MaterializeResult, MetadataValue

from oso_dagster.settings import Settings

REBUILD_TAG = "oso/rebuild_staging"
STATE_TABLE = "_oso_staging_state"


@dataclass(frozen=True)
class StagingPlan:
    """Which selected models ``dbt build`` gets, which are left alone, and the digests to store after."""

    build: list[str]  # unique ids
    unchanged: list[str]
    digests: dict[str, str]
    reason: str = ""


def rebuild_requested(settings: Settings, tags: Mapping[str, str]) -> bool:
    return settings.rebuild_staging or str(tags.get(REBUILD_TAG, "")).strip().lower() in ("1", "true", "yes")


def plan_staging(
    settings: Settings, manifest: Mapping[str, Any], selected: Iterable[str], force: bool
) -> StagingPlan:
    """Split the selected model ids into those to build and those unchanged in the warehouse."""
    models = [uid for uid in selected if manifest["nodes"].get(uid, {}).get("resource_type") == "model"]
    others = [uid for uid in selected if uid not in models]
    if settings.destination != "duckdb":
        return StagingPlan(build=[*models, *others], unchanged=[], digests={}, reason="not on DuckDB")
    catalog, stored = _read_duckdb(settings, manifest, models)
    digests = {uid: digest(manifest, uid, catalog) for uid in models}
    if force:
        return StagingPlan(build=[*models, *others], unchanged=[], digests=digests, reason="rebuild requested")
    build, unchanged = list(others), []
    for uid in models:
        node = manifest["nodes"][uid]
        is_view = node.get("config", {}).get("materialized") == "view"
        exists = (node.get("schema"), _relation(node)) in catalog
        if is_view and exists and stored.get(uid) == digests[uid]:
            unchanged.append(uid)
        else:
            build.append(uid)
    return StagingPlan(build=build, unchanged=unchanged, digests=digests)


def digest(manifest: Mapping[str, Any], uid: str, catalog: Mapping[tuple[Any, Any], list[Any]]) -> str:
    """What a view's definition depends on: its code and config, where it lands, its parents' columns."""
    node = manifest["nodes"][uid]
    parents = []
    for parent in sorted(node.get("depends_on", {}).get("nodes", [])):
        found = manifest.get("sources", {}).get(parent) or manifest["nodes"].get(parent) or {}
        relation = (found.get("schema"), _relation(found))
        parents.append([parent, found.get("relation_name"), catalog.get(relation)])
    described = {
        "dbt": version("dbt-core"),
        "checksum": (node.get("checksum") or {}).get("checksum"),
        "raw_code": node.get("raw_code"),
        "config": node.get("config"),
        "relation": node.get("relation_name"),
        "columns": sorted((node.get("columns") or {}).keys()),
        "parents": parents,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _relation(node: Mapping[str, Any]) -> str | None:
    return node.get("identifier") or node.get("alias") or node.get("name")


def _schemas(manifest: Mapping[str, Any], models: Sequence[str]) -> set[str]:
    schemas: set[str | None] = set()
    for uid in models:
        node = manifest["nodes"][uid]
        schemas.add(node.get("schema"))
        for parent in node.get("depends_on", {}).get("nodes", []):
            found = manifest.get("sources", {}).get(parent) or manifest["nodes"].get(parent) or {}
            schemas.add(found.get("schema"))
    return {s for s in schemas if s}


def _state_schema(manifest: Mapping[str, Any], models: Sequence[str]) -> str | None:
    return next((manifest["nodes"][uid].get("schema") for uid in models), None)


def _read_duckdb(
    settings: Settings, manifest: Mapping[str, Any], models: Sequence[str]
) -> tuple[dict[tuple[str, str], list[Any]], dict[str, str]]:
    """The catalog's columns of every relation involved, and the stored digests: one short read."""
    import duckdb

    schemas = sorted(_schemas(manifest, models))
    catalog: dict[tuple[str, str], list[Any]] = {}
    stored: dict[str, str] = {}
    if not schemas or not settings.duckdb_path.exists():
        return catalog, stored
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_schema, table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            f"WHERE table_schema IN ({', '.join('?' for _ in schemas)}) ORDER BY table_schema, table_name, "
            "ordinal_position", schemas,
        ).fetchall()
        for schema, table, column, kind, nullable in rows:
            catalog.setdefault((schema, table), []).append([column, kind, nullable])
        state_schema = _state_schema(manifest, models)
        if (state_schema, STATE_TABLE) in catalog:
            stored = dict(con.execute(
                f'SELECT unique_id, digest FROM "{state_schema}"."{STATE_TABLE}"').fetchall())
    return catalog, stored


def record_built(settings: Settings, manifest: Mapping[str, Any], plan: StagingPlan, built: Iterable[str]) -> None:
    """Store the digest of each model built successfully (the caller holds the warehouse write lock)."""
    import duckdb

    rows = [(uid, plan.digests[uid]) for uid in built if uid in plan.digests]
    schema = _state_schema(manifest, [uid for uid, _ in rows])
    if settings.destination != "duckdb" or not rows or schema is None:
        return
    table = f'"{schema}"."{STATE_TABLE}"'
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("BEGIN")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} (unique_id VARCHAR PRIMARY KEY, digest VARCHAR, "
                    "built_at TIMESTAMPTZ)")
        con.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, now())", rows)
        con.execute("COMMIT")



def build_staging(context: Any, dbt: Any, manifest: Mapping[str, Any], translator: Any,
                  settings: Settings) -> Iterator[Any]:
    """``dbt build`` of the selected models that changed; the unchanged views are left alone, and logged.

    The caller holds the warehouse write lock. dagster-dbt passes the step's own selection; the unchanged
    views are excluded from it, so Dagster's subsetting keeps working.
    """
    keys = {}
    for uid, node in manifest["nodes"].items():
        if node.get("resource_type") in ("model", "seed", "snapshot"):
            keys[translator.get_asset_spec(manifest, uid, None).key] = uid
    selected = [keys[key] for key in context.selected_asset_keys if key in keys]
    force = rebuild_requested(settings, context.run.tags)
    plan = plan_staging(settings, manifest, selected, force)
    context.log.info(
        f"staging: {len(plan.build)} model(s) to build, {len(plan.unchanged)} view(s) unchanged (SQL, dbt "
        f"config and table columns as at their last build: not re-created){f' ({plan.reason})' if plan.reason else ''}"
    )
    if plan.unchanged:
        context.log.debug("unchanged views: " + ", ".join(manifest["nodes"][uid]["name"] for uid in plan.unchanged))
    # an unchanged view still reads its table live: it is reported materialized (marked unchanged), so Dagster
    # does not show it as out of date behind the table this run loaded (one event each, ~16 ms in SQLite storage)
    by_uid = {uid: key for key, uid in keys.items()}
    for uid in plan.unchanged:
        yield MaterializeResult(asset_key=by_uid[uid], metadata={
            "unchanged": True,
            "summary": MetadataValue.text("view unchanged (SQL, dbt config and table columns as at its last "
                                          "build): not re-created"),
        })
    if not plan.build:
        return
    # dagster-dbt adds the step's own selection; an extra --select would widen it (dbt unions them), an
    # --exclude narrows it, taking the unchanged views' tests along
    unchanged = [manifest["nodes"][uid]["name"] for uid in plan.unchanged]
    args = ["build", *(["--exclude", " ".join(unchanged)] if unchanged else [])]
    invocation = dbt.cli(args, context=context)
    try:
        yield from invocation.stream()
    finally:
        record_built(settings, manifest, plan, _succeeded(invocation))


def _succeeded(invocation: Any) -> list[str]:
    """The nodes ``dbt build`` reports a success for (run_results.json), none if it says nothing."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:
        return []
    return [r["unique_id"] for r in results if r.get("status") == "success"]
