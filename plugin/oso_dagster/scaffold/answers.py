"""The answers ``oso-new-source`` collects (source, tables, columns) and the rules they must meet.

The one model shared by the CLI, introspection, rendering and ``--update``; ``.oso-source.json`` records it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from oso_dagster.errors import TemplateError
from oso_dagster.naming import check_source_name, mode_label, warehouse_name
from oso_dagster.utils.secrets import SecretReference

PROJECT_DIR_PREFIX = "oso-source-"


ANSWERS_FILE = ".oso-source.json"


BASE_DIR = ".oso-source/base"  # the files as last rendered: what --update merges from and --force compares to


DEFAULT_SECRET_KEY = "db_connection_string"


@dataclass
class ColumnSpec:
    """One source column, as reflected (``type`` is the source database's type name)."""

    name: str
    type: str | None = None
    nullable: bool | None = None


@dataclass
class TableSpec:
    """One table to replicate: its source name, cursor (if incremental) and, when introspected, its shape."""

    name: str
    cursor: str | None = None
    cursor_reason: str | None = None
    primary_key: list[str] | None = None
    columns: list[ColumnSpec] | None = None
    view: bool = False
    key_option: bool = False  # primary_key was named by the user (--primary-key): written into assets.py

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TableSpec:
        columns = raw.get("columns")
        return cls(
            name=str(raw["name"]),
            cursor=raw.get("cursor") or None,
            cursor_reason=raw.get("cursor_reason") or None,
            primary_key=list(raw["primary_key"]) if raw.get("primary_key") is not None else None,
            columns=[ColumnSpec(**c) for c in columns] if columns is not None else None,
            view=bool(raw.get("view")),
            key_option=bool(raw.get("key_option")),
        )


@dataclass
class SourceSpec:
    """Every answer the template needs. The database URL is deliberately not part of it."""

    name: str
    secret_group: str
    secret_key: str = DEFAULT_SECRET_KEY
    schema: str | None = None
    tables: list[TableSpec] = field(default_factory=list)
    introspected: bool = False
    exclude: list[str] = field(default_factory=list)
    include_views: bool = False
    all_tables: bool = False  # every table of the schema was taken (no --table): --update adds new ones
    cdc: bool = False  # sql_assets(..., cdc=True): change data capture instead of cursors and full copies

    @property
    def project_slug(self) -> str:
        return f"{PROJECT_DIR_PREFIX}{self.name}"

    def validate(self) -> None:
        """Refuse what would make a broken package; messages say how to fix the input."""
        try:
            check_source_name(self.name)
        except ValueError as exc:
            raise TemplateError(str(exc)) from None
        try:
            SecretReference(group_name=self.secret_group, key=self.secret_key)
        except Exception as exc:
            raise TemplateError(str(exc).replace("SecretReference group_name", "--secret-group").replace(
                "SecretReference key", "--secret-key")) from None
        if not self.tables:
            raise TemplateError(
                "No tables to replicate: pass --table NAME (repeatable) or --database-url to list them."
            )
        landed: dict[str, str] = {}
        for table in self.tables:
            if not table.name.strip():
                raise TemplateError("A table name is empty.")
            wh = warehouse_name(table.name)
            if wh in landed:
                raise TemplateError(
                    f"Tables {landed[wh]!r} and {table.name!r} would both land as {wh!r} in the warehouse; "
                    "pick one of them with --table (one source cannot hold both)."
                )
            landed[wh] = table.name

    def cookiecutter_context(self) -> dict[str, Any]:
        """``extra_context`` for cookiecutter.

        Public variables are rendered by cookiecutter as Jinja, so user values never go there directly:
        each one is a reference into the private ``_answers`` dict, which cookiecutter passes through as data.
        """
        answers = {
            "source_name": self.name,
            "project_slug": self.project_slug,
            "secret_group": self.secret_group,
            "secret_key": self.secret_key,
            "schema": self.schema or "",
            "table_names": "",
        }
        ref = "{{{{ cookiecutter._answers[{}] }}}}"
        context: dict[str, Any] = {key: ref.format(json.dumps(key)) for key in answers}
        context["_answers"] = answers
        context["_source"] = {"introspected": self.introspected, "tables": [asdict(t) for t in self.tables],
                              "exclude": list(self.exclude), "include_views": self.include_views,
                              "all_tables": self.all_tables, "cdc": self.cdc}
        return context


def parse_table_names(text: str) -> list[TableSpec]:
    """``"events=time, users"`` -> tables (the ``table_names`` answer of a plain ``cookiecutter`` run)."""
    tables = []
    for item in re.split(r"[,\n]", text or ""):
        name, _, cursor = item.strip().partition("=")
        if name.strip():
            tables.append(TableSpec(name=name.strip(), cursor=cursor.strip() or None))
    return tables


def table_summary(tables: Iterable[TableSpec]) -> list[str]:
    """One line per table for the CLI's report."""
    lines = []
    for table in tables:
        mode = mode_label(table.cursor)
        if table.view:
            mode = f"view, {mode}"
        if table.key_option and table.primary_key:
            mode += f", key {', '.join(table.primary_key)}"
        why = f" ({table.cursor_reason})" if table.cursor_reason else ""
        lines.append(f"  {table.name}: {mode}{why}")
    return lines
