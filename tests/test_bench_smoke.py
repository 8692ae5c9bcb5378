"""The benchmarks run end to end at tiny sizes and land every source row on the user's path (not timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                            check=False, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"command: python bench/{script}" in result.stdout  # says what produced it
    return result.stdout


def _rows(output: str, label: str) -> list[int]:
    """The row counts of the printed table's rows whose label starts with ``label``."""
    pattern = re.compile(rf"^\| {re.escape(label)}[^|]* \| ([\d,]+) \|", re.MULTILINE)
    return [int(m.replace(",", "")) for m in pattern.findall(output)]


def _database(url: str) -> list[str]:
    return ["--admin-url", url, "--database", sa.engine.make_url(url).database]


@pytest.mark.slow
@pytest.mark.postgres
def test_replicate_postgres_incremental_lands_every_row(pg_url: str) -> None:
    out = _run("replicate.py", "--source", "postgres", "--rows", "2000", "--mode", "incremental", "--change-pct", "1",
               "--no-peers", "--skip-dlt", *_database(pg_url))
    assert _rows(out, "sql_assets incremental, first sync") == [2000]
    assert _rows(out, "sql_assets incremental, 20 rows changed") == [2000]
    assert _rows(out, "floor: psql") == [2000]


@pytest.mark.slow
@pytest.mark.mariadb
def test_replicate_mariadb_lands_every_row(mysql_url: str) -> None:
    out = _run("replicate.py", "--source", "mysql", "--rows", "2000", "--slice", "100", "--no-peers",
               *_database(mysql_url))
    assert _rows(out, "sql_assets replace, first sync") == [2000]
    assert _rows(out, "dlt defaults (original system)") == [100]


@pytest.mark.slow
def test_replicate_sqlite_lands_every_row(tmp_path: Path) -> None:
    out = _run("replicate.py", "--source", "sqlite", "--rows", "2000", "--no-peers", "--skip-dlt", "--path",
               str(tmp_path / "bench.sqlite"))
    assert _rows(out, "sql_assets replace, first sync") == [2000]


@pytest.mark.slow
@pytest.mark.postgres
def test_many_tables_lands_every_row_on_each_sync(pg_url: str) -> None:
    out = _run("many_tables.py", "--tables", "3", *_database(pg_url))
    landed = 3 * 50 + 1000
    assert _rows(out, "first sync") == [landed]
    assert _rows(out, "no-change sync") == [landed]
    assert _rows(out, "1 table changed") == [landed]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if "argparse" in p.read_text()))
def test_every_benchmark_script_starts(script: str) -> None:
    """A script whose imports broke (a module moved) fails here, not the day someone measures with it."""
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
