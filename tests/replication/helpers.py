"""Helpers shared by the replication tests: run a source through Dagster, read the DuckDB warehouse back."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster
import duckdb
from oso_dagster import SecretReference, sql_assets


def set_secret(monkeypatch: Any, name: str, url: str) -> str:
    """Export the source's connection string where the env resolver reads it; return the variable name."""
    ref = SecretReference(group_name=name, key="db_connection_string")
    monkeypatch.setenv(ref.env_var, url)
    return ref.env_var


def build(name: str, tables: Sequence[Mapping[str, Any]], **options: Any) -> dagster.AssetsDefinition:
    return sql_assets(name, SecretReference(group_name=name, key="db_connection_string"), tables, **options)


def run(name: str, tables: Sequence[Mapping[str, Any]], **options: Any) -> dagster.ExecuteInProcessResult:
    """Materialize every table of the source in process; errors are returned, not raised."""
    return dagster.materialize([build(name, tables, **options)], raise_on_error=False)


def run_ok(name: str, tables: Sequence[Mapping[str, Any]], **options: Any) -> dagster.ExecuteInProcessResult:
    """A run that must succeed: a failure is reported at once, not retried with backoff first."""
    options.setdefault("retries", 0)
    result = run(name, tables, **options)
    assert result.success, failure_text(result)
    return result


def failure_text(result: dagster.ExecuteInProcessResult) -> str:
    """Everything a user sees about a failed step: the Failure description and the error chain."""
    parts: list[str] = []
    for event in result.all_events:
        if event.event_type_value not in ("STEP_FAILURE", "RUN_FAILURE"):
            continue
        data = event.event_specific_data
        if data is None:
            continue
        user = getattr(data, "user_failure_data", None)
        if user is not None and user.description:
            parts.append(user.description)
        error = getattr(data, "error", None)
        while error is not None:
            parts.append(error.message)
            parts.extend(error.stack)
            error = error.cause or error.context
    return "\n".join(parts)


def materialization_metadata(result: dagster.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """``{table: {key: value}}`` of the run's asset materializations."""
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out[mat.asset_key.path[-1]] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def warehouse() -> Path:
    return Path(os.environ["OSO_HOME"]) / "warehouse.duckdb"


def query(sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        return con.sql(sql).fetchall()


def rows_by_id(schema: str, table: str, columns: Sequence[str] | None = None) -> dict[Any, dict[str, Any]]:
    """The landed table as ``{id: {column: value}}``, dlt's bookkeeping columns dropped."""
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        rel = con.sql(f'select * from "{schema}"."{table}"')
        names = [c for c in rel.columns if not c.startswith("_dlt_")]
        kinds = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        # an INTERVAL as DuckDB's text, which keeps months, days and microseconds apart (a timedelta does not)
        select = ", ".join(f'"{n}"::VARCHAR' if kinds[n] == "INTERVAL" else f'"{n}"' for n in names)
        data = con.sql(f'select {select} from "{schema}"."{table}"').fetchall()
    rows = [dict(zip(names, row, strict=True)) for row in data]
    if columns is not None:
        rows = [{c: r[c] for c in columns} for r in rows]
    return {r["id"]: r for r in rows}


def column_types(schema: str, table: str) -> dict[str, str]:
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        rows = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()
    return dict(rows)


def assert_dlt_path_lands_the_same(monkeypatch: Any, url: str, table: str, direct_source: str) -> None:
    """Load ``table`` again through dlt's load files (append is not a full refresh, so it skips the direct
    DuckDB load) and check both paths landed the same column types and the same values."""
    from replication.matrix import mismatches

    set_secret(monkeypatch, "via_dlt", url)
    meta = materialization_metadata(run_ok("via_dlt", [{"table": table, "write_disposition": "append"}]))
    assert meta[table]["loader"] == "dlt"
    assert column_types("via_dlt", table) == column_types(direct_source, table)
    assert mismatches(rows_by_id(direct_source, table), rows_by_id("via_dlt", table)) == []
