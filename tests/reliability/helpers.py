"""Helpers for the reliability tests: replication runs in real subprocesses, and exact warehouse comparisons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

RUNNER = Path(__file__).with_name("runner.py")


def secret_env(name: str, url: str) -> dict[str, str]:
    """The environment of a subprocess run: this test's OSO_HOME plus the source's secret."""
    env = dict(os.environ)
    env[f"DAGSTER__{name.upper()}__DB_CONNECTION_STRING"] = url
    env.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    return env


def spec(name: str, tables: Sequence[Mapping[str, Any]], **options: Any) -> str:
    return json.dumps({"name": name, "tables": list(tables), "options": options})


def start(name: str, url: str, tables: Sequence[Mapping[str, Any]], env: Mapping[str, str] | None = None,
          **options: Any) -> subprocess.Popen[str]:
    """Start a replication run in its own process (its own process group, so SIGKILL hits it alone)."""
    full_env = {**secret_env(name, url), **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(RUNNER), spec(name, tables, **options)],
        env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def run_subprocess(name: str, url: str, tables: Sequence[Mapping[str, Any]], timeout: float = 600,
                   env: Mapping[str, str] | None = None, **options: Any) -> tuple[int, str]:
    proc = start(name, url, tables, env=env, **options)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def warehouse() -> Path:
    return Path(os.environ["OSO_HOME"]) / "warehouse.duckdb"


def wh(sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Query the DuckDB warehouse read-only."""
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def wh_columns(schema: str, table: str) -> dict[str, str]:
    rows = wh("select column_name, data_type from information_schema.columns "
              "where table_schema = ? and table_name = ? order by ordinal_position", [schema, table])
    return dict(rows)  # type: ignore[arg-type]


def src(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def exact_replica(url: str, table: str, schema: str, landed: str, key: str, checksum_sql: str,
                  wh_checksum_sql: str) -> None:
    """Assert the warehouse holds exactly the source's rows: same count, no duplicate keys, same checksum."""
    (src_count, src_sum), = src(url, f"select count(*), {checksum_sql} from {table}")
    (wh_count, wh_distinct, wh_sum), = wh(
        f'select count(*), count(distinct "{key}"), {wh_checksum_sql} from "{schema}"."{landed}"')
    assert wh_count == wh_distinct, f"{wh_count - wh_distinct} duplicate keys in the warehouse"
    assert (wh_count, int(wh_sum or 0)) == (src_count, int(src_sum or 0))


def cursor_state(name: str, table: str, cursor: str) -> Any:
    """The incremental cursor's last value as stored in the warehouse's dlt state (what the next run resumes from)."""
    import dlt

    pipelines_dir = str(Path(os.environ["OSO_HOME"]) / "dlt_pipelines")
    pipeline = dlt.attach(pipeline_name=f"oso__{name}", pipelines_dir=pipelines_dir)
    return pipeline.state["sources"][name]["resources"][table]["incremental"][cursor]["last_value"]
