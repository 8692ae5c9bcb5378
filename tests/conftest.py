"""Shared fixtures: an isolated OSO_HOME per test, and fresh databases on the real PostgreSQL and MariaDB services.

``OSO_TEST_REQUIRE_ALL=1`` (set by .ci/run; ``CI=true`` implies it unless ``OSO_TEST_REQUIRE_ALL=0``) turns a
missing tool (Chromium, the BigQuery emulator) from a skip into a failure that names it: CI never passes
with a test skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from cdc.servers import ServerUnavailable, binlog_mariadb, logical_postgres

PG_ADMIN_URL = os.environ.get("OSO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("OSO_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _require_all(env: os._Environ[str] | dict[str, str]) -> bool:
    """``OSO_TEST_REQUIRE_ALL`` when set, else whether ``CI`` is set (read at import: tests clear ``OSO_*``)."""
    flag = env.get("OSO_TEST_REQUIRE_ALL") or env.get("CI") or ""
    return flag.strip().lower() not in ("", "0", "false", "no")


REQUIRE_ALL = _require_all(os.environ)


def missing_tool(message: str) -> NoReturn:
    """Skip a test whose tool is missing here; fail it instead, with the same message, when all must run."""
    if REQUIRE_ALL:
        pytest.fail(f"{message} [OSO_TEST_REQUIRE_ALL/CI is set: a missing tool fails the test]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def oso_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own OSO_HOME (warehouse, dlt state, dbt project) and no leaked settings."""
    for name in list(os.environ):
        if name.startswith(("OSO_", "DAGSTER__", "DESTINATION__", "SOURCES__")):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "oso_home"
    monkeypatch.setenv("OSO_HOME", str(home))
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "WARNING")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


def _fresh_database(admin_url: str, kind: str) -> Iterator[str]:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"oso_test_{uuid.uuid4().hex[:10]}"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # the service is down: say so instead of a bare traceback
        engine.dispose()
        pytest.fail(f"{kind} is not reachable at {admin_url}: {exc}. Start it (see .ci/run).")
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            if kind == "PostgreSQL":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL to a new, empty PostgreSQL database, dropped after the test."""
    yield from _fresh_database(PG_ADMIN_URL, "PostgreSQL")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A SQLAlchemy URL to a new, empty MariaDB database, dropped after the test."""
    yield from _fresh_database(MYSQL_ADMIN_URL, "MariaDB")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.sqlite'}"


def run_sql(url: str, *statements: str) -> None:
    """Run DDL/DML on a source database (test helper)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


# Throw-away servers with a change log (tests/cdc/servers.py), one of each per test session, for CDC tests.


@pytest.fixture(scope="session")
def logical_pg_url() -> Iterator[str]:
    """PostgreSQL with ``wal_level=logical`` on a free port; its database ``test``."""
    try:
        with logical_postgres() as url:
            yield url
    except ServerUnavailable as exc:
        missing_tool(str(exc))


@pytest.fixture(scope="session")
def binlog_mariadb_url() -> Iterator[str]:
    """MariaDB writing a ROW binlog with full row metadata on a free port; its database ``test``."""
    try:
        with binlog_mariadb() as url:
            yield url
    except ServerUnavailable as exc:
        missing_tool(str(exc))
