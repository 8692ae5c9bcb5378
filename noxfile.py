"""Project tasks. `nox -s tests` is what CI runs; `nox -s demo` shows the product on the embedded default."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the plugin, tests, bench and noxfile."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "plugin", "tests", "bench", "noxfile.py")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against the real services (PostgreSQL, MariaDB), DuckDB, dbt and Dagster."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """Sample SQLite database -> oso-source-demo scaffolded from it -> replicated into DuckDB and staged, twice."""
    session.install("-e", ".")
    session.run("python", "-m", "oso_dagster.demo", "prepare")
    session.install("--force-reinstall", "--no-deps", "./oso-demo/oso-source-demo")
    session.run("python", "-m", "oso_dagster.demo", "run")


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
