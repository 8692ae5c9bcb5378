"""Secrets: a wrong password, a closed port and a missing secret each fail clearly, and no password reaches
the run's output, Dagster's event log and run storage, dlt's pipeline folders or the dbt profiles."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance
from oso_dagster.location.dbt_project import write_project
from oso_dagster.settings import Settings

from reliability.helpers import run_subprocess, src

RIGHT = "Sekr3t-pw"
WRONG = "Wr0ng-Pw-4711"
USER = "oso_t"


def _leaks(password: str, *roots: Path) -> list[str]:
    """Every file under ``roots`` (sqlite storage included, read as bytes) that contains ``password``."""
    needle = password.encode()
    return [str(p) for root in roots if root.exists() for p in root.rglob("*")
            if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def mariadb_user(mysql_url: str) -> Iterator[sa.engine.URL]:
    """A real MariaDB login with a password (PostgreSQL here trusts every password on 127.0.0.1)."""
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(mysql_url).database
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{USER}'@'%'"))
        conn.execute(sa.text(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{RIGHT}'"))
        conn.execute(sa.text(f"GRANT SELECT ON `{database}`.* TO '{USER}'@'%'"))
    src(mysql_url, "CREATE TABLE users (id int PRIMARY KEY, name varchar(20))")
    src(mysql_url, "INSERT INTO users VALUES (1, 'a'), (2, 'b')")
    try:
        yield sa.engine.make_url(mysql_url).set(username=USER, password=RIGHT)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{USER}'@'%'"))
        admin.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.mariadb
@pytest.mark.slow
def test_secret_failures_are_clear_and_no_password_is_stored_anywhere(
    mariadb_user: sa.engine.URL, tmp_path: Path, oso_env: Path
) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {"DAGSTER_HOME": str(dagster_home)}
    good = mariadb_user.render_as_string(hide_password=False)
    outputs: list[str] = []

    # a good run first, so state, schema and run storage exist for the password to leak into
    code, out = run_subprocess("sec", good, [{"table": "users"}], env=env, retries=0)
    outputs.append(out)
    assert code == 0, out[-3000:]
    # then a failing one with the right password (a missing table), which prints errors
    code, out = run_subprocess("sec", good, [{"table": "users"}, {"table": "nope"}], env=env, retries=0)
    outputs.append(out)
    assert code == 1 and "'nope' does not exist" in out, out[-3000:]

    wrong = mariadb_user.set(password=WRONG).render_as_string(hide_password=False)
    code, out = run_subprocess("sec", wrong, [{"table": "users"}], env=env, retries=0)
    outputs.append(out)
    assert code == 1 and "Login to" in out and "was refused" in out and "Check the user and password" in out, out

    closed = mariadb_user.set(host="127.0.0.1", port=_closed_port()).render_as_string(hide_password=False)
    code, out = run_subprocess("sec", closed, [{"table": "users"}], env=env, retries=0)
    outputs.append(out)
    assert code == 1 and "Cannot reach" in out and "may be retried" in out, out[-3000:]

    missing_env = {**env, "OSO_SECRETS": "file", "OSO_SECRETS_FILE": str(tmp_path / "absent.toml")}
    code, out = run_subprocess("sec", good, [{"table": "users"}], env=missing_env, retries=0)
    outputs.append(out)
    assert code == 1 and "Secret sec/db_connection_string cannot be read" in out, out[-3000:]

    write_project(oso_env / "dbt", Settings.from_env(), [])  # the generated dbt profiles
    assert (oso_env / "dbt" / "profiles.yml").is_file()
    assert any(dagster_home.rglob("*.db")), "expected Dagster's sqlite run and event storage"
    for password in (RIGHT, WRONG):
        assert not [o for o in outputs if password in o], password
        assert _leaks(password, dagster_home, oso_env) == [], password
    # the storage searched above is where the runs were recorded: every run, with its failure messages
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == len(outputs)
        failures = [e.dagster_event.event_specific_data for r in runs
                    for e in instance.all_logs(r.run_id, of_type=DagsterEventType.STEP_FAILURE)]
    stored = [f.user_failure_data.description if f.user_failure_data else f.error.message for f in failures]
    assert any("was refused" in (text or "") for text in stored), stored
