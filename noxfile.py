"""Project tasks. CI (`.ci/run`) runs `nox -s lint template tests`; `nox -s demo` shows the product on the embedded
default; `nox -s dist` builds and checks the release artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "template", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the plugin, tests, bench and noxfile; mypy over the plugin (config in pyproject.toml)."""
    session.install("ruff>=0.6", "mypy>=1.19,<2", "types-PyYAML", "-e", ".[bigquery,gcp,dg]")
    session.run("ruff", "check", "plugin", "tests", "bench", "noxfile.py")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against the real services (PostgreSQL, MariaDB), DuckDB, dbt and Dagster."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def template(session: nox.Session) -> None:
    """Scaffold a package from a sample SQLite database, install it, and run the package's own tests."""
    session.install("-e", ".", "pytest>=8")
    work = Path(session.create_tmp()).absolute() / "template-check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    database = work / "sample.sqlite"
    session.run("python", "-c", f"from pathlib import Path; from oso_dagster.demo import create_database; "
                f"create_database(Path({str(database)!r}))")
    session.run("oso-new-source", "sample", "--database-url", f"sqlite:///{database}", "--output-dir", str(work),
                "--no-input")
    package = work / "oso-source-sample"
    session.install("--force-reinstall", "--no-deps", str(package))
    session.run("pytest", "-q", str(package / "tests"))
    session.run("oso-sources", "list")


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """Sample SQLite database -> oso-source-demo scaffolded from it -> replicated into DuckDB and staged, twice."""
    session.install("-e", ".")
    session.run("python", "-m", "oso_dagster.demo", "prepare")
    session.install("--force-reinstall", "--no-deps", "./oso-demo/oso-source-demo")
    session.run("python", "-m", "oso_dagster.demo", "run")


@nox.session(python=PYTHON, default=False)
def dist(session: nox.Session) -> None:
    """Build the sdist and wheel into dist/, check the wheel ships the template, and `twine check` both."""
    session.install("build[uv]>=1.2", "twine>=5")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", "dist", ".")
    session.run("python", "-c", WHEEL_HAS_TEMPLATE)
    session.run("twine", "check", "--strict", *(str(p) for p in sorted(Path("dist").iterdir())))


# `oso-new-source` reads the cookiecutter template from the installed package; a wheel without it is broken.
WHEEL_HAS_TEMPLATE = """
import sys, zipfile, pathlib
(wheel,) = pathlib.Path("dist").glob("oso_dagster-*.whl")
names = set(zipfile.ZipFile(wheel).namelist())
for needed in ("oso_dagster/template/cookiecutter.json", "oso_dagster/definitions.py"):
    if needed not in names:
        sys.exit(f"{wheel.name} lacks {needed}")
print(f"{wheel.name}: template and plugin present")
"""


@nox.session(python=PYTHON, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
