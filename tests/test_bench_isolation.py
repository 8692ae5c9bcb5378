"""bench/ never touches a user's warehouse: inherited OSO_* settings (OSO_DUCKDB_PATH above all) are replaced by
a scratch OSO_HOME in every benchmark child."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from isolation import bench_env  # noqa: E402


@pytest.fixture
def user_warehouse(tmp_path: Path) -> Path:
    """A user's own warehouse, which a benchmark must leave byte for byte as it was."""
    path = tmp_path / "user" / "warehouse.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE mine AS SELECT 42 AS answer")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _user_env(warehouse: Path) -> dict[str, str]:
    user = {"OSO_HOME": str(warehouse.parent), "OSO_DUCKDB_PATH": str(warehouse), "OSO_DATASET_PREFIX": "prod_",
            "DAGSTER_HOME": str(warehouse.parent), "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse),
            "DAGSTER__BENCH__DB_CONNECTION_STRING": "postgresql://user:pw@prod/db"}
    return {**bench_env(warehouse.parent / "unused"), **user}  # a clean base plus the user's settings


def test_bench_env_replaces_every_user_setting(tmp_path: Path, user_warehouse: Path) -> None:
    env = bench_env(tmp_path / "scratch", _user_env(user_warehouse), PYTHONPATH="site")
    assert env["OSO_HOME"] == str(tmp_path / "scratch")
    assert env["OSO_DUCKDB_PATH"] == str(tmp_path / "scratch" / "warehouse.duckdb")
    assert env["PYTHONPATH"] == "site"
    leaked = {k for k in env if k.startswith(("OSO_", "DAGSTER", "DESTINATION__"))} - {"OSO_HOME", "OSO_DUCKDB_PATH"}
    assert leaked == set()
    assert str(user_warehouse) not in env.values()


def _run(script: str, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], env=env, capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _assert_untouched(warehouse: Path, digest: str) -> None:
    assert _digest(warehouse) == digest
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["warehouse.duckdb"]  # no dlt, dbt or lock file


@pytest.mark.slow
def test_sqlite_benchmark_leaves_the_users_warehouse_alone(tmp_path: Path, user_warehouse: Path) -> None:
    digest = _digest(user_warehouse)
    _run("sqlite_values.py", _user_env(user_warehouse), "--rows", "300", "--path", str(tmp_path / "bench.sqlite"))
    _assert_untouched(user_warehouse, digest)


@pytest.mark.slow
@pytest.mark.postgres
def test_replication_benchmark_leaves_the_users_warehouse_alone(pg_url: str, user_warehouse: Path) -> None:
    digest = _digest(user_warehouse)
    database = sa.engine.make_url(pg_url).database
    _run("replicate.py", _user_env(user_warehouse), "--rows", "500", "--slice", "50", "--admin-url", pg_url,
         "--database", database, "--no-peers")
    _assert_untouched(user_warehouse, digest)
