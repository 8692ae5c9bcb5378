"""A run killed with SIGKILL mid-load (extract, or the DuckDB load itself) loses nothing: the next run
leaves an exact replica, with no duplicate keys and the right cursor."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reliability.helpers import cursor_state, exact_replica, run_subprocess, src, start, warehouse, wh

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROWS = 2_000_000
# order-independent content checksums (same arithmetic on both sides, kept within bigint)
SRC_SUM = "sum(((id * 7 + seq * 13) % 1000003) + length(payload))"
WH_SUM = 'sum((("id" * 7 + "seq" * 13) % 1000003) + length("payload"))'


def _pipeline_dir(name: str) -> Path:
    return Path(os.environ["OSO_HOME"]) / "dlt_pipelines" / f"oso__{name}"


def _kill_when(proc: subprocess.Popen[str], name: str, phase: str, timeout: float = 300) -> str:
    """SIGKILL the run's whole process group once it reaches ``phase``: ``extract`` (rows being written
    to load files) or ``load`` (the package is being loaded into DuckDB)."""
    pattern = "normalize/*/*" if phase == "extract" else "load/normalized/*"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the run finished before it could be killed in phase {phase}: {out[-3000:]}")
        if list(_pipeline_dir(name).glob(pattern)):
            if phase == "load":
                time.sleep(1.0)  # into the copy of the big file / the merge
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return phase
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"the run never reached phase {phase}")


@pytest.mark.parametrize("phase", ["extract", "load"])
def test_killed_incremental_run_then_normal_run_is_exact(pg_url: str, phase: str) -> None:
    src(pg_url, "CREATE TABLE big (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text)")
    src(pg_url, "INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1, 100000) g")
    tables = [{"table": "big", "incremental": "seq"}]
    code, out = run_subprocess("kinc", pg_url, tables)
    assert code == 0, out[-3000:]
    # changes for the killed run: updates (merged on the key) and 2M inserts, all past the cursor
    src(pg_url, "UPDATE big SET seq = seq + 10000000, payload = 'u' || payload WHERE id % 4 = 0")
    src(pg_url, f"INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(100001, {ROWS}) g")
    _kill_when(start("kinc", pg_url, tables), "kinc", phase)
    # the stale lock file and the pending package the killed run left behind must not break this run
    assert (Path(os.environ["OSO_HOME"]) / "warehouse.duckdb.lock").exists()
    code, out = run_subprocess("kinc", pg_url, tables)
    assert code == 0, out[-3000:]
    exact_replica(pg_url, "big", "kinc", "big", "id", SRC_SUM, WH_SUM)
    (max_seq,), = src(pg_url, "SELECT max(seq) FROM big")
    assert cursor_state("kinc", "big", "seq") == max_seq


def _kill_mid_direct_load(proc: subprocess.Popen[str], growth: int = 8 << 20, timeout: float = 300) -> None:
    """SIGKILL a direct DuckDB load mid-insert: once the warehouse file (and its WAL) grew by ``growth`` bytes."""
    files = [warehouse(), warehouse().with_name(warehouse().name + ".wal")]

    def size() -> int:
        return sum(f.stat().st_size for f in files if f.exists())

    before = size()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the run finished before it could be killed mid-insert: {out[-3000:]}")
        if size() - before >= growth:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the warehouse never grew: the load did not start")


@pytest.mark.parametrize("backend", ["connectorx", "pandas"])
def test_killed_full_refresh_then_normal_run_is_exact(pg_url: str, backend: str) -> None:
    """Arrow backends load directly into DuckDB (one transaction); pandas frames go through dlt's staging."""
    src(pg_url, "CREATE TABLE big (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text)")
    src(pg_url, "INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1, 1000) g")
    tables = [{"table": "big", "backend": backend}]
    code, out = run_subprocess("kfull", pg_url, tables)
    assert code == 0, out[-3000:]
    assert wh("SELECT count(*), min(id) FROM kfull.big") == [(1000, 1)]
    src(pg_url, "DELETE FROM big WHERE id <= 10")
    src(pg_url, f"INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1001, {ROWS}) g")
    if backend == "connectorx":
        _kill_mid_direct_load(start("kfull", pg_url, tables))
        # the new version of the table was never committed: readers still see the old one, whole
        assert wh("SELECT count(*), min(id) FROM kfull.big") == [(1000, 1)]
        assert [t for (t,) in wh("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                 "'kfull'")] == ["big"]  # and nothing was left behind
    else:
        _kill_when(start("kfull", pg_url, tables), "kfull", "load")
        # Not asserted: what readers see between the kill and the next run. A kill during dlt's staging ->
        # table swap was observed to leave the table empty (staging full) on DuckDB 2.0.1; see
        # docs/reliability.md.
        (count, _), = wh("SELECT count(*), min(id) FROM kfull.big")
        assert count in (0, 1000, ROWS - 10)  # never a partial copy
    code, out = run_subprocess("kfull", pg_url, tables)
    assert code == 0, out[-3000:]
    exact_replica(pg_url, "big", "kfull", "big", "id", SRC_SUM, WH_SUM)
