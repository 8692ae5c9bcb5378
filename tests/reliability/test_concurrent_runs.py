"""Two runs of the same source at once: the DuckDB write lock makes the second wait, so the warehouse and
the cursor end exact, as if the runs had been sequential."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from reliability.helpers import cursor_state, exact_replica, src, start, warehouse, wh

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SRC_SUM = "sum(((id * 7 + seq * 13) % 1000003) + length(payload))"
WH_SUM = 'sum((("id" * 7 + "seq" * 13) % 1000003) + length("payload"))'


class _Run:
    """A run's process and its output as printed: Dagster logs STEP_START and the step's end as they happen."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(proc.stdout or []), daemon=True)
        self._reader.start()

    def in_step(self) -> bool:
        """Alive, and inside its replication step: the step started and has not ended."""
        text = "".join(self.lines)
        return self.proc.poll() is None and "STEP_START" in text and not any(
            end in text for end in ("STEP_SUCCESS", "STEP_FAILURE"))

    def finish(self, timeout: float = 600) -> None:
        """Wait for the end; the run must succeed (the second waits for the lock, it does not fail)."""
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        assert self.proc.returncode == 0, "".join(self.lines)[-3000:]


def _lock_holders(lock: Path) -> set[int]:
    """Processes holding ``lock`` (an flock, as filelock takes it), from /proc/locks; waiters are not listed."""
    if not lock.exists():
        return set()
    inode = lock.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            holders.add(int(fields[4]))
    return holders


def _run_together(name: str, url: str, tables: list[dict[str, str]]) -> None:
    """Start two runs at once and see them overlap: one inside its step holding the warehouse's write lock
    while the other was inside its step too, waiting for it; both succeed."""
    runs = [_Run(start(name, url, tables)) for _ in range(2)]
    lock = Path(str(warehouse()) + ".lock")
    overlapped = False
    while any(run.proc.poll() is None for run in runs):
        holders = _lock_holders(lock)
        for holder, waiter in (runs, runs[::-1]):
            if holders == {holder.proc.pid} and holder.in_step() and waiter.in_step():
                overlapped = True
        time.sleep(0.05)
    for run in runs:
        run.finish()
    assert overlapped, "the two runs were never inside their steps at the same time:\n" + "".join(runs[0].lines)[-2000:]


def test_two_runs_started_together_do_not_interleave(pg_url: str) -> None:
    for table in ("inc", "fullr"):
        src(pg_url, f"CREATE TABLE {table} (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text)")
        src(pg_url, f"INSERT INTO {table} SELECT g, g, md5(g::text) FROM generate_series(1, 300000) g")
    tables = [{"table": "inc", "incremental": "seq"}, {"table": "fullr"}]
    _run_together("both", pg_url, tables)
    exact_replica(pg_url, "inc", "both", "inc", "id", SRC_SUM, WH_SUM)
    exact_replica(pg_url, "fullr", "both", "fullr", "id", SRC_SUM, WH_SUM)
    assert cursor_state("both", "inc", "seq") == 300000
    # both loads completed, one after the other (dlt records each finished load once)
    loads = wh('SELECT count(*) FROM "both"._dlt_loads WHERE status = 0')[0][0]
    assert loads == 2
    # changes between runs, then two more concurrent runs: still exact
    src(pg_url, "UPDATE inc SET seq = seq + 1000000, payload = 'u' WHERE id % 3 = 0")
    src(pg_url, "DELETE FROM fullr WHERE id % 5 = 0")
    _run_together("both", pg_url, tables)
    exact_replica(pg_url, "inc", "both", "inc", "id", SRC_SUM, WH_SUM)
    exact_replica(pg_url, "fullr", "both", "fullr", "id", SRC_SUM, WH_SUM)
