"""What ``oso-new-source`` and its ``--update`` share: reading TABLE=VALUE options and showing a package path."""

from __future__ import annotations

from pathlib import Path

from oso_dagster.errors import TemplateError


def parse_table_values(option: str, values: tuple[str, ...], *, many: bool, example: str) -> dict[str, list[str]]:
    """``TABLE=A[,B]`` options as ``{table: [A, B]}``; ``many=False`` allows one value per table."""
    parsed: dict[str, list[str]] = {}
    form = "TABLE=COLUMN[,COLUMN]" if many else "TABLE=COLUMN"
    for value in values:
        table, sep, columns = value.partition("=")
        names = [c.strip() for c in columns.split(",") if c.strip()] if many else [columns.strip()]
        if not sep or not table.strip() or not all(names):
            raise TemplateError(f"{option} {value!r} must be {form}, e.g. {example}.")
        parsed[table.strip()] = names
    return parsed


def shell_path(project: Path) -> str:
    """``project`` as a command line shows it: ``./`` keeps pip from taking a bare folder name for a PyPI package."""
    return str(project) if project.is_absolute() or str(project).startswith(".") else f"./{project}"
