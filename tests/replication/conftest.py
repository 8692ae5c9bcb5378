"""``source_url``: the same behaviour tests against SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=DATABASES)
def source_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgres": "pg_url", "mariadb": "mysql_url"}[request.param]
    return request.getfixturevalue(fixture)
