"""The Jinja side of the template: the extension cookiecutter loads (``_extensions``), its filters and globals.

It derives every per-table name the template files need, records the answers, renders the per-table
models and reports answers that would make a broken package (the pre-generate hook prints them).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

from oso_dagster.errors import TemplateError
from oso_dagster.naming import check_source_name, mode_label, staging_model_name, warehouse_name
from oso_dagster.scaffold.answers import SourceSpec, TableSpec, parse_table_names
from oso_dagster.scaffold.literals import (
    SIMPLE_IDENTIFIER,
    json_pretty,
    needs_quoting,
    payload,
    py_str,
    safe_text,
    sql_ident,
    toml_str,
    yaml_str,
)
from oso_dagster.scaffold.render import staging_dir, template_dir
from oso_dagster.utils.secrets import SecretReference


def render_tables(cookiecutter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tables of a cookiecutter context, with every derived name the template files need."""
    source = cookiecutter.get("_source") or {}
    specs = [TableSpec.from_mapping(t) for t in source.get("tables") or []]
    if not specs:
        specs = parse_table_names(str(cookiecutter.get("table_names", "")))
    name = str(cookiecutter["source_name"])
    schema = str(cookiecutter.get("schema") or "") or None
    return [_render_table(name, schema, spec) for spec in specs]


def _render_table(source_name: str, schema: str | None, spec: TableSpec) -> dict[str, Any]:
    wh = warehouse_name(spec.name)
    entry = [f'"table": {py_str(spec.name)}']
    if schema:
        entry.append(f'"schema": {py_str(schema)}')
    if spec.cursor:
        entry.append(f'"incremental": incremental({py_str(spec.cursor)})')
    pk = spec.primary_key or []
    if spec.key_option and pk:
        entry.append(f'"primary_key": [{", ".join(py_str(c) for c in pk)}]')
    columns = []
    for column in spec.columns or []:
        cwh = warehouse_name(column.name)
        tests = (["unique", "not_null"] if len(pk) == 1 else ["not_null"]) if column.name in pk else []
        kind = f" ({safe_text(column.type)})" if column.type else ""
        columns.append(
            {
                "name": column.name,
                "warehouse_name": cwh,
                "sql": sql_ident(cwh),
                "quote": needs_quoting(cwh),
                "tests": tests,
                "description": f"Source column '{safe_text(column.name)}'{kind}."
                + (" Primary key." if column.name in pk else "")
                + (" Incremental cursor." if column.name == spec.cursor else ""),
            }
        )
    mode = mode_label(safe_text(spec.cursor) if spec.cursor else None)
    if spec.view:
        mode = f"view, {mode}"
    return {
        "name": spec.name,
        "display_name": safe_text(spec.name),
        "warehouse_name": wh,
        "quote": needs_quoting(wh),
        "model_name": staging_model_name(source_name, spec.name),
        "cursor": spec.cursor,
        "cursor_reason": safe_text(spec.cursor_reason) if spec.cursor_reason else None,
        "mode": mode,
        "primary_key": pk,
        "key_option": spec.key_option,
        "view": spec.view,
        "columns": columns if spec.columns is not None else None,
        "python_entry": "{" + ", ".join(entry) + "}",
        "description": f"Table '{safe_text(spec.name)}' of source {source_name}, staged: renamed and cast "
        f"only, one row per source row ({mode}).",
    }


def answers_record(cookiecutter: Mapping[str, Any]) -> dict[str, Any]:
    """What ``.oso-source.json`` records: the answers and template version, never a URL or secret."""
    from oso_dagster import __version__

    return {
        "template_version": __version__,
        "source_name": cookiecutter["source_name"],
        "secret_group": cookiecutter["secret_group"],
        "secret_key": cookiecutter["secret_key"],
        "schema": cookiecutter.get("schema") or None,
        "introspected": bool((cookiecutter.get("_source") or {}).get("introspected")),
        "exclude": list((cookiecutter.get("_source") or {}).get("exclude") or []),
        "include_views": bool((cookiecutter.get("_source") or {}).get("include_views")),
        "all_tables": bool((cookiecutter.get("_source") or {}).get("all_tables")),
        **({"cdc": True} if source_cdc(cookiecutter) else {}),
        "tables": [_table_answer(t) for t in render_tables(cookiecutter)],
    }


def source_cdc(cookiecutter: Mapping[str, Any]) -> bool:
    """Whether the package turns change data capture on (``oso-new-source --cdc``)."""
    return bool((cookiecutter.get("_source") or {}).get("cdc"))


def _table_answer(table: Mapping[str, Any]) -> dict[str, Any]:
    """One table of ``.oso-source.json``: its name and cursor, and a user-named key or view flag when set."""
    answer: dict[str, Any] = {"table": table["name"], "incremental": table["cursor"]}
    if table["key_option"]:
        answer["primary_key"] = table["primary_key"]
    if table["view"]:
        answer["view"] = True
    return answer


def render_table_files(environment: Environment, cookiecutter: Mapping[str, Any]) -> str:
    """The per-table files (``per_table/`` templates rendered once per table) as a :func:`payload`."""
    repo = Path(str(cookiecutter.get("_repo_dir") or template_dir()))
    template = environment.from_string((repo / "per_table" / "stg_model.sql").read_text(encoding="utf-8"))
    staging = staging_dir(check_source_name(cookiecutter["source_name"]))
    files = {}
    for table in render_tables(cookiecutter):
        if not SIMPLE_IDENTIFIER.match(table["model_name"]):
            raise TemplateError(f"Cannot name a dbt model {table['model_name']!r}.")
        text = template.render(cookiecutter=cookiecutter, table=table)
        files[f"{staging}/{table['model_name']}.sql"] = text.rstrip("\n") + "\n"
    return payload(files)


def problems(cookiecutter: Mapping[str, Any]) -> list[str]:
    """Why these answers cannot make a package (empty when they can); the pre-generate hook reports them."""
    found = []
    try:
        spec = SourceSpec(
            name=str(cookiecutter["source_name"]),
            secret_group=str(cookiecutter["secret_group"]),
            secret_key=str(cookiecutter["secret_key"]),
            tables=[TableSpec(name=t["name"], cursor=t["cursor"]) for t in render_tables(cookiecutter)],
        )
        spec.validate()
        if cookiecutter["project_slug"] != spec.project_slug:
            wrong = cookiecutter["project_slug"]
            found.append(f"the folder must be named {spec.project_slug!r}, not {wrong!r}.")
    except TemplateError as exc:
        found.append(str(exc))
    return found


def secret_env_var(group: str, key: str) -> str:
    return SecretReference(group_name=group, key=key).env_var


class OsoExtension(Extension):
    """Jinja filters and globals of the template (cookiecutter loads it through ``_extensions``)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        from oso_dagster import __version__

        environment.filters.update(
            pystr=py_str,
            yamlstr=yaml_str,
            tomlstr=toml_str,
            safe_text=safe_text,
            sql_ident=sql_ident,
            json_pretty=json_pretty,
            warehouse_name=warehouse_name,
        )
        environment.globals.update(
            oso_tables=render_tables,
            oso_answers=answers_record,
            oso_cdc=source_cdc,
            oso_payload=payload,
            oso_problems=problems,
            oso_table_files=functools.partial(render_table_files, environment),
            oso_version=__version__,
            secret_env_var=secret_env_var,
        )
