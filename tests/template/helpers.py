"""Baking the template through the real CLI and checking what comes out."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from oso_dagster.cli.new_source import new_source

# dbt Jinja the template means to emit; any other "{{" or "{%" is a rendering leftover.
ALLOWED_JINJA = re.compile(r"\{\{ (source\('|env_var\('OSO_DATASET_PREFIX'|adapter\.quote\(')")

# Python/JSON/Markdown files may quote user data containing braces; template syntax itself must be gone.
TEMPLATE_LEFTOVER = re.compile(r"\{[{%#][-+]?\s*(cookiecutter|oso_|table\b|column\b|for |if |end|set |raw)")


def bake(out: Path, name: str, *args: str, input: str | None = None) -> Result:
    """Run ``oso-new-source NAME --output-dir OUT ARGS`` in-process (``--no-input`` unless input is given)."""
    extra = [] if input is not None else ["--no-input"]
    return CliRunner().invoke(new_source, [name, "--output-dir", str(out), *extra, *args], input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def files(project: Path) -> dict[str, str]:
    """The package's files, without the render snapshot ``.oso-source/`` that --update merges from."""
    return {
        str(p.relative_to(project)): p.read_text(encoding="utf-8")
        for p in sorted(project.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and ".oso-source" not in p.relative_to(project).parts
    }


def check_generated(project: Path) -> dict[str, str]:
    """Every file parses in its language and no template syntax is left over; returns the files."""
    generated = files(project)
    for relative, text in generated.items():
        assert not TEMPLATE_LEFTOVER.search(text), f"leftover template syntax in {relative}"
        if relative.endswith((".sql", ".yml")):  # dbt renders these: only the intended dbt Jinja may remain
            for match in re.finditer(r"\{\{|\{%|\{#", text):
                assert ALLOWED_JINJA.match(text, match.start()), f"unexpected Jinja in {relative}: " + text[
                    match.start(): match.start() + 60
                ]
        if relative.endswith(".py"):
            ast.parse(text, filename=relative)
        elif relative.endswith((".yml", ".yaml")):
            assert yaml.safe_load(text) is not None, relative
        elif relative.endswith(".toml"):
            tomllib.loads(text)
        elif relative.endswith(".json"):
            json.loads(text)
    return generated


def expected_paths(name: str, models: list[str]) -> set[str]:
    pkg = f"src/oso_source_{name}"
    staging = f"{pkg}/dbt/models/staging"
    return {
        "pyproject.toml", "README.md", ".gitignore", ".oso-source.json", "tests/test_package.py",
        f"{pkg}/__init__.py", f"{pkg}/assets.py", f"{pkg}/dbt/dbt_project.yml",
        f"{staging}/_{name}__sources.yml", f"{staging}/_{name}__models.yml",
        *(f"{staging}/stg_{name}__{m}.sql" for m in models),
    }


def assets_entries(project: Path, name: str) -> list[str]:
    """The table dict lines of assets.py, as written."""
    text = (project / f"src/oso_source_{name}/assets.py").read_text(encoding="utf-8")
    return [line.strip().rstrip(",") for line in text.splitlines() if line.strip().startswith('{"table"')]


def load_yaml(project: Path, name: str, which: str) -> dict:
    path = project / f"src/oso_source_{name}/dbt/models/staging/_{name}__{which}.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))
