"""A chunked snapshot killed (SIGKILL) while its chunks are being committed resumes on the next run: the
committed chunks are not read again and the warehouse then equals the source, value for value."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from decimal import Decimal
from typing import Any

import pytest

from reliability.helpers import run_subprocess, src, start, wh

pytestmark = [pytest.mark.slow]

ROWS = 20_000
CHUNK = 1_000
_PROGRESS = re.compile(r"big: (\d+) of (\d+) chunks")
_READ = re.compile(r"big: \d+ of \d+ chunks, ([\d,]+) rows")

SCHEMAS = {
    "postgresql": ["CREATE TABLE big (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text, "
                   "amount numeric(12,2), ts timestamp)",
                   f"INSERT INTO big SELECT g, g * 3, md5(g::text), g / 7.0, timestamp '2020-01-01' + g * "
                   f"interval '1 second' FROM generate_series(1, {ROWS}) g"],
    "mysql": ["CREATE TABLE big (id bigint PRIMARY KEY, seq bigint NOT NULL, payload varchar(64), "
              "amount decimal(12,2), ts datetime(6))",
              f"INSERT INTO big SELECT seq, seq * 3, md5(seq), seq / 7.0, timestamp '2020-01-01 00:00:00' + "
              f"interval seq second FROM seq_1_to_{ROWS}"],
    "sqlite": ["CREATE TABLE big (id integer PRIMARY KEY, seq integer NOT NULL, payload text, amount real)",
               f"INSERT INTO big WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {ROWS}) "
               "SELECT x, x * 3, hex(randomblob(8)) || x, x / 7.0 FROM g"],
}


def _kill_mid_snapshot(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """SIGKILL the run once its log says some, not all, chunks were committed; return what it printed."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        match = _PROGRESS.search(line)
        if match and int(match[1]) > 0 and int(match[1]) * 3 >= int(match[2]):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, f"exited with {proc.returncode}, not by SIGKILL"
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the run never reported committed chunks:\n" + "".join(seen)[-3000:])


def _normal(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(Decimal(str(v)) if isinstance(v, Decimal) else v for v in row)


@pytest.mark.parametrize("kind", [
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mariadb),
    "sqlite",
])
def test_killed_chunked_snapshot_resumes_exactly(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue({"postgresql": "pg_url", "mysql": "mysql_url", "sqlite": "sqlite_url"}[kind])
    for statement in SCHEMAS[kind]:
        src(url, statement)
    if kind == "postgresql":
        src(url, "ANALYZE big")
    tables = [{"table": "big", "snapshot_chunk_rows": CHUNK}]
    _kill_mid_snapshot(start("chunk_k", url, tables, retries=0))
    (done, committed), = wh("SELECT count(*), coalesce(sum(rows), 0) FROM chunk_k._oso_snapshot_chunks "
                            "WHERE state = 'done'")
    (total,), = wh("SELECT count(*) FROM chunk_k._oso_snapshot_chunks WHERE state = 'planned'")
    assert 0 < done < total, (done, total)  # killed while chunks were being committed
    assert wh("SELECT count(*) FROM chunk_k._oso_snapshot_big") == [(committed,)]
    assert "big" not in {t for (t,) in wh("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'chunk_k'")}

    code, out = run_subprocess("chunk_k", url, tables, retries=0)
    assert code == 0, out[-3000:]
    assert "resuming the unfinished snapshot" in out
    read = [int(m[1].replace(",", "")) for m in _READ.finditer(out)]
    assert read and read[-1] == ROWS - committed, (read[-1:], ROWS, committed)  # no committed chunk read again

    columns = "id, seq, payload, amount" + (", ts" if kind != "sqlite" else "")
    source = [_normal(r) for r in src(url, f"SELECT {columns} FROM big ORDER BY id")]
    landed = [_normal(r) for r in wh(f"SELECT {columns} FROM chunk_k.big ORDER BY id")]
    assert len(landed) == ROWS and landed == source
    # nothing left behind: no staging table, no plan
    assert [t for (t,) in wh("SELECT table_name FROM information_schema.tables WHERE table_schema = 'chunk_k'")
            ] == ["big"]


def test_reset_table_drops_an_unfinished_snapshot() -> None:
    """``oso-sources reset-table`` forgets a snapshot a killed run left, so the next run plans a new one."""
    from oso_dagster.ops.reset import reset_table
    from oso_dagster.run import chunked_snapshot, load_duckdb
    from oso_dagster.settings import Settings
    from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline

    settings = Settings.from_env()
    pipeline = make_pipeline(settings, "chunk_r")
    with dlt_environment(settings):
        load_duckdb.ensure_dataset(pipeline)
        with pipeline.sql_client() as client:
            chunked_snapshot._ensure_progress_table(client)
            chunked_snapshot._save_plan(client, "big", "key", chunked_snapshot._ranges([[1000]]))
            client.execute_sql("CREATE TABLE chunk_r._oso_snapshot_big (id BIGINT)")
    reset_table("chunk_r", "big", settings)
    assert wh("SELECT table_name FROM information_schema.tables WHERE table_schema = 'chunk_r'") == []
