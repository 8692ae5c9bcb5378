"""Schema changes between runs: additions and widenings keep working, drops stop being filled, and a
type change that cannot be applied in place fails clearly (never a silent variant column) with a way out."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dlt.sources import incremental
from replication.helpers import failure_text, run, set_secret

from reliability.helpers import src, wh, wh_columns

pytestmark = pytest.mark.postgres

TABLES = [{"table": "t", "incremental": incremental("seq")}, {"table": "f"}]


def _cli_env() -> dict[str, str]:
    """This environment, with the test venv's commands on PATH as a user's activated venv has them."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run_ok() -> None:
    result = run("sc", TABLES, retries=0)
    assert result.success, failure_text(result)


def test_added_dropped_and_widened_columns(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secret(monkeypatch, "sc", pg_url)
    for table in ("t", "f"):
        src(pg_url, f"CREATE TABLE {table} (id int PRIMARY KEY, seq int, a int, b varchar(10), gone text)")
        src(pg_url, f"INSERT INTO {table} VALUES (1, 1, 1, 'x', 'g1')")
    _run_ok()
    for table in ("t", "f"):
        src(pg_url, f"ALTER TABLE {table} ADD COLUMN added text, DROP COLUMN gone, "
                    "ALTER COLUMN a TYPE bigint, ALTER COLUMN b TYPE text")
        src(pg_url, f"INSERT INTO {table} VALUES (2, 2, 5000000000, 'longer than ten characters', 'new')")
    _run_ok()
    for table in ("t", "f"):
        columns = wh_columns("sc", table)
        assert not [c for c in columns if "__v_" in c], columns  # no variant columns
        assert columns["a"] == "BIGINT" and columns["b"] == "VARCHAR" and columns["added"] == "VARCHAR"
        rows = wh(f"SELECT id, a, b, added FROM sc.{table} ORDER BY id")
        assert rows == [(1, 1, "x", None), (2, 5000000000, "longer than ten characters", "new")]
    # the dropped column stays in the warehouse and is no longer filled
    assert "gone" in wh_columns("sc", "t")
    assert wh("SELECT id, gone FROM sc.t WHERE id = 2") == [(2, None)]


@pytest.mark.parametrize(("old", "new", "using", "value"), [
    ("text", "integer", "length(c)", "42"),
    ("integer", "text", "'v' || c::text", "'abc'"),
])
def test_incompatible_type_change_fails_clearly_then_reset_reloads(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, old: str, new: str, using: str, value: str
) -> None:
    set_secret(monkeypatch, "sc", pg_url)
    src(pg_url, f"CREATE TABLE t (id int PRIMARY KEY, seq int, c {old})")
    src(pg_url, "CREATE TABLE f (id int PRIMARY KEY)")
    first = "'c1'" if old == "text" else "1"
    src(pg_url, f"INSERT INTO t VALUES (1, 1, {first})")
    _run_ok()
    before = wh("SELECT * FROM sc.t ORDER BY id")
    src(pg_url, f"ALTER TABLE t ALTER COLUMN c TYPE {new} USING {using}")
    src(pg_url, f"INSERT INTO t VALUES (2, 2, {value})")
    result = run("sc", TABLES, retries=0)
    assert not result.success
    text = failure_text(result)
    old_dlt, new_dlt = ("text", "bigint") if old == "text" else ("bigint", "text")
    for needed in ("table 't'", "column 'c'", f"from {old_dlt}", f"to {new_dlt}", "cast the column"):
        assert needed in text, (needed, text[:2000])
    assert wh("SELECT * FROM sc.t ORDER BY id") == before  # nothing half-applied
    assert not [c for c in wh_columns("sc", "t") if "__v_" in c]
    # the way out the message gives, run exactly as printed: the next run reloads the table with its new type
    printed = re.search(r"`(oso-sources reset-table [^`]+)`", text)
    assert printed, text[:2000]
    done = subprocess.run(shlex.split(printed.group(1)), capture_output=True, text=True, timeout=300, env=_cli_env())
    assert done.returncode == 0, done.stderr
    assert "sc.t" in done.stdout
    _run_ok()
    assert wh_columns("sc", "t")["c"] == ("BIGINT" if new == "integer" else "VARCHAR")
    assert [r[0] for r in wh("SELECT id FROM sc.t ORDER BY id")] == [1, 2]


def test_reset_table_refuses_a_table_the_warehouse_does_not_hold(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secret(monkeypatch, "sc", pg_url)
    src(pg_url, "CREATE TABLE t (id int PRIMARY KEY, seq int)")
    src(pg_url, "CREATE TABLE f (id int PRIMARY KEY)")
    src(pg_url, "INSERT INTO t VALUES (1, 1)")
    _run_ok()
    done = subprocess.run(["oso-sources", "reset-table", "sc", "nope"], capture_output=True, text=True, timeout=300,
                          env=_cli_env())
    assert done.returncode == 1
    assert "holds no table 'nope' of source 'sc'" in done.stderr and "Traceback" not in done.stderr
    assert wh("SELECT id FROM sc.t") == [(1,)]  # nothing else was touched
