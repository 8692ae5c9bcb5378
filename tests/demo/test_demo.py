"""`nox -s demo` end to end: a full load, then an incremental sync that merges new and changed rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from oso_dagster import demo

pytestmark = pytest.mark.slow


def test_demo_replicates_and_stages_twice(demo_result: dict[str, object]) -> None:
    root = Path(demo_result["root"])
    with duckdb.connect(str(root / "oso_home" / "warehouse.duckdb"), read_only=True) as conn:
        events = conn.execute("SELECT count(*), count(DISTINCT id) FROM staging.stg_demo__events").fetchone()
        assert events == (demo.EVENTS + 2_500, demo.EVENTS + 2_500)  # merged: no duplicate keys
        assert conn.execute("SELECT kind, amount FROM demo.events WHERE id = 1").fetchone()[0] == "refund"
        assert conn.execute("SELECT count(*) FROM staging.stg_demo__users").fetchone() == (demo.USERS,)
        columns = [r[0] for r in conn.execute("DESCRIBE staging.stg_demo__products").fetchall()]
        assert "product_name" in columns  # "Product Name" landed in snake_case
    output = str(demo_result["output"])
    assert "second sync (incremental)" in output
    assert "dagster dev -m oso_dagster.definitions" in output


def test_demo_summary_reads_rows_loaded_from_dagster(demo_result: dict[str, object]) -> None:
    lines = [line for line in str(demo_result["output"]).splitlines() if line.startswith("second sync")]
    # 2,500 new events plus the one whose updated_at moved; the full-refresh tables reload entirely
    assert lines and f"2,501 / {demo.PRODUCTS:,} / {demo.USERS:,}" in lines[-1]
