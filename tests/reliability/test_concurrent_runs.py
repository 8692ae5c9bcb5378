"""Two runs of the same source at once: the DuckDB write lock makes the second wait, so the warehouse and
the cursor end exact, as if the runs had been sequential."""

from __future__ import annotations

import pytest

from reliability.helpers import cursor_state, exact_replica, src, start, wh

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SRC_SUM = "sum(((id * 7 + seq * 13) % 1000003) + length(payload))"
WH_SUM = 'sum((("id" * 7 + "seq" * 13) % 1000003) + length("payload"))'


def test_two_runs_started_together_do_not_interleave(pg_url: str) -> None:
    for table in ("inc", "fullr"):
        src(pg_url, f"CREATE TABLE {table} (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text)")
        src(pg_url, f"INSERT INTO {table} SELECT g, g, md5(g::text) FROM generate_series(1, 300000) g")
    tables = [{"table": "inc", "incremental": "seq"}, {"table": "fullr"}]
    runs = [start("both", pg_url, tables) for _ in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in runs]
    for proc, out in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]  # the second waited for the lock, it did not fail
    exact_replica(pg_url, "inc", "both", "inc", "id", SRC_SUM, WH_SUM)
    exact_replica(pg_url, "fullr", "both", "fullr", "id", SRC_SUM, WH_SUM)
    assert cursor_state("both", "inc", "seq") == 300000
    # both loads completed, one after the other (dlt records each finished load once)
    loads = wh('SELECT count(*) FROM "both"._dlt_loads WHERE status = 0')[0][0]
    assert loads == 2
    # changes between runs, then two more concurrent runs: still exact
    src(pg_url, "UPDATE inc SET seq = seq + 1000000, payload = 'u' WHERE id % 3 = 0")
    src(pg_url, "DELETE FROM fullr WHERE id % 5 = 0")
    runs = [start("both", pg_url, tables) for _ in range(2)]
    for proc in runs:
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, out[-3000:]
    exact_replica(pg_url, "inc", "both", "inc", "id", SRC_SUM, WH_SUM)
    exact_replica(pg_url, "fullr", "both", "fullr", "id", SRC_SUM, WH_SUM)
