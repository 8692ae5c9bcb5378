"""Throw-away servers with a change log, one of each per test session (tests/cdc/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import missing_tool

from .servers import ServerUnavailable, binlog_mariadb, logical_postgres


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
