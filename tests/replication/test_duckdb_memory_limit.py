"""The DuckDB memory cap docs/reliability.md states: 400 MB during a local run, unless the user set their own."""

from __future__ import annotations

import duckdb
import pytest
from oso_dagster.settings import Settings
from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline


def _rendered(limit: str) -> str:
    """How DuckDB itself shows ``limit``, so the comparison does not depend on its formatting."""
    with duckdb.connect() as conn:
        conn.execute(f"SET memory_limit = '{limit}'")
        return conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _limit_in_a_run() -> str:
    settings = Settings.from_env()
    with dlt_environment(settings):
        pipeline = make_pipeline(settings, "capped")
        with pipeline.sql_client() as client:  # the connection both the dlt load and the direct load use
            return client.execute_sql("SELECT current_setting('memory_limit')")[0][0]


def test_a_local_run_caps_duckdb_memory_at_400_mb() -> None:
    assert _limit_in_a_run() == _rendered("400MB")


def test_the_users_own_limit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "2GB"}')
    assert _limit_in_a_run() == _rendered("2GB")
