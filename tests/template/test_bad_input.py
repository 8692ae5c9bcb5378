"""Every refused input: a specific message on stderr, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_sql

from .helpers import bake


def refused(tmp_path: Path, out: Path, name: str, *args: str, message: str) -> None:
    before = sorted(p.name for p in out.iterdir()) if out.exists() else []
    result = bake(out, name, *args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # a ClickException, not a crash
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    after = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert after == before, "something was written"


@pytest.mark.parametrize("name", ["MyDb", "my-db", "1db", "class", "", "db.x", "é"])
def test_bad_source_name(tmp_path: Path, name: str) -> None:
    refused(tmp_path, tmp_path, name, "--table", "t", message="cannot name a source")


def test_existing_folder_without_force(tmp_path: Path) -> None:
    (tmp_path / "oso-source-mydb").mkdir()
    (tmp_path / "oso-source-mydb" / "keep.txt").write_text("x")
    refused(tmp_path, tmp_path, "mydb", "--table", "t", message="already exists. Pass --force")


def test_target_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "oso-source-mydb").write_text("x")
    refused(tmp_path, tmp_path, "mydb", "--table", "t", "--force", message="is not a folder")


def test_no_tables(tmp_path: Path) -> None:
    refused(tmp_path, tmp_path, "mydb", message="No tables to replicate")


@pytest.mark.parametrize(("args", "message"), [
    (["--secret-group", "my group"], "--secret-group='my group' is invalid"),
    (["--secret-key", "a/b"], "--secret-key='a/b' is invalid"),
    (["--incremental", "events"], "must be TABLE=COLUMN"),
    (["--incremental", "users=id"], "table 'users' is not among the selected tables"),
])
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    refused(tmp_path, tmp_path, "mydb", "--table", "events", *args, message=message)


def test_colliding_tables(tmp_path: Path) -> None:
    refused(tmp_path, tmp_path, "mydb", "--table", "Users", "--table", "users", message="would both land as 'users'")


def test_unreachable_database_masks_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://reader:hunter2-secret@127.0.0.1:1/app"
    refused(tmp_path, tmp_path, "mydb", "--database-url", url, message="Cannot reach postgresql+psycopg://reader:***@")
    result = bake(tmp_path, "mydb", "--database-url", url)
    assert "hunter2" not in result.output


def test_not_a_url(tmp_path: Path) -> None:
    refused(tmp_path, tmp_path, "mydb", "--database-url", "not a url", message="is not a SQLAlchemy URL")


def test_unknown_table(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY)")
    refused(tmp_path, tmp_path, "mydb", "--database-url", sqlite_url, "--table", "Events",
            message="--table 'Events' (did you mean 'events'?) not found")


def test_unknown_incremental_column(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY, ts timestamp)")
    refused(tmp_path, tmp_path, "mydb", "--database-url", sqlite_url, "--incremental", "events=updated_at",
            message="table 'events' has no column 'updated_at'; its columns are 'id', 'ts'")


def test_incremental_without_primary_key(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE logs (line text, ts timestamp NOT NULL)")
    refused(tmp_path, tmp_path, "mydb", "--database-url", sqlite_url, "--incremental", "logs=ts",
            message="table 'logs' has no primary key")


@pytest.mark.postgres
def test_missing_schema(tmp_path: Path, pg_url: str) -> None:
    refused(tmp_path, tmp_path, "mydb", "--database-url", pg_url, "--schema", "nope",
            message="Schema 'nope' does not exist")


@pytest.mark.slow
def test_real_process_exits_cleanly(tmp_path: Path) -> None:
    """The installed console script: message on stderr, exit 1, no traceback, password masked."""
    script = Path(sys.executable).parent / "oso-new-source"
    result = subprocess.run(
        [str(script), "mydb", "--output-dir", str(tmp_path), "--no-input",
         "--database-url", "postgresql+psycopg://reader:hunter2-secret@127.0.0.1:1/app"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Connecting to postgresql+psycopg://reader:***@127.0.0.1:1/app")
    assert "Error: Cannot reach" in result.stderr and "Traceback" not in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert not any(tmp_path.iterdir())
