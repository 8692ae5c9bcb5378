"""``oso-new-source --update PACKAGE_DIR``: the package's recorded answers, today's database, a three-way merge.

Every answer except the URL comes from ``.oso-source.json``. Tables already in the package keep their
recorded cursor and key; new tables get the automatic choice. Nothing is written when a merge conflicts.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from oso_dagster.errors import TemplateError
from oso_dagster.template import SourceSpec, TableSpec, table_summary
from oso_dagster.utils.redact import mask_url


def _say(message: str) -> None:
    click.echo(message, err=True)


def update_package(project: Path, database_url: str | None, *, name: str | None, interactive: bool) -> None:
    from oso_dagster.introspect import introspect
    from oso_dagster.update import plan_update, read_answers, read_base, render_files, staging_columns

    answers = read_answers(project)
    base = read_base(project)
    source = str(answers["source_name"])
    if name is not None and name != source:
        raise TemplateError(f"{project} holds source {source!r}, not {name!r}; drop NAME or fix --update.")
    if database_url is None:
        if not interactive:
            raise TemplateError("--update needs --database-url to read the tables again (it is never stored).")
        database_url = click.prompt("Database URL to read table definitions from", hide_input=True)
    recorded = {t["table"]: t for t in answers.get("tables") or []}
    all_tables = bool(answers.get("all_tables"))
    result = introspect(
        database_url, schema=answers.get("schema"), tables=() if all_tables else list(recorded),
        exclude=answers.get("exclude") or [], include_views=bool(answers.get("include_views")),
        missing_ok=True, progress=_say,
    )
    _say(f"Reflected {len(result.tables)} table(s) from {mask_url(database_url)} in {result.seconds:.1f}s.")
    specs = [_keep_recorded(spec, recorded.get(spec.name)) for spec in result.tables]
    spec = SourceSpec(
        name=source, secret_group=answers["secret_group"], secret_key=answers["secret_key"],
        schema=result.schema, tables=specs, introspected=True, exclude=list(answers.get("exclude") or []),
        include_views=bool(answers.get("include_views")), all_tables=all_tables,
    )
    spec.validate()
    new = render_files(spec)
    plan = plan_update(project, base, new)
    if plan.conflicts:
        raise TemplateError(
            "Nothing was written: these hand edits overlap what the update changes. Resolve them (or commit and "
            "move the edit aside), then rerun:\n  " + "\n  ".join(plan.conflicts)
        )
    from oso_dagster.update import apply_plan

    apply_plan(project, plan, new)
    click.echo(f"Updated {project} (template {answers.get('template_version')} -> "
               f"{_new_version(new)}). Tables:")
    for line in table_summary(specs):
        click.echo(line)
    _report(source, recorded, specs, staging_columns(base, source), staging_columns(new, source), plan)
    shown = str(project) if project.is_absolute() or str(project).startswith(".") else f"./{project}"
    click.echo(f"\nNext:\n  pip install --force-reinstall --no-deps {shlex.quote(shown)}")


def _keep_recorded(spec: TableSpec, recorded: dict[str, Any] | None) -> TableSpec:
    """A table already in the package keeps the cursor and key its answers record, if its columns still exist."""
    if recorded is None:
        return spec
    names = {c.name for c in spec.columns or []}
    key = recorded.get("primary_key")
    if key and set(key) <= names:
        spec.primary_key, spec.key_option = list(key), True
    cursor = recorded.get("incremental")
    if cursor == spec.cursor:
        pass  # the same choice as today's: keep today's evidence
    elif cursor is None:
        spec.cursor, spec.cursor_reason = None, "kept from the package"
    elif cursor in names and spec.primary_key:
        spec.cursor, spec.cursor_reason = cursor, "kept from the package"
    else:
        spec.cursor, spec.cursor_reason = None, f"its recorded cursor {cursor!r} is gone: now full refresh"
    return spec


def _new_version(files: dict[str, str]) -> str:
    import json

    return str(json.loads(files[".oso-source.json"])["template_version"])


def _report(source: str, recorded: dict[str, Any], specs: list[TableSpec], before: dict[str, list[str]],
            after: dict[str, list[str]], plan: Any) -> None:
    names = {t.name for t in specs}
    added = [t.name for t in specs if t.name not in recorded]
    gone = [name for name in recorded if name not in names]
    lines = []
    if added:
        lines.append(f"New tables: {', '.join(added)}")
    if gone:
        lines.append(f"Gone from the database: {', '.join(gone)} (their generated entries were removed where "
                     "unedited; the warehouse keeps the data)")
    for model, columns in after.items():
        if model in before:
            new_columns = [c for c in columns if c not in before[model]]
            if new_columns:
                lines.append(f"New columns in {model}: {', '.join(new_columns)}")
    for model, columns in before.items():
        if model in after:
            lost = [c for c in columns if c not in after[model]]
            if lost:
                lines.append(f"Columns gone from {model}: {', '.join(lost)}")
    lines += [f"Kept: {note}" for note in plan.kept]
    lines.append(f"{len(plan.writes)} file(s) written, {len(plan.deletes)} removed; hand edits merged in.")
    click.echo("\n".join(lines))
