"""``oso-new-source --update PACKAGE_DIR``: the package's recorded answers, today's database, a three-way merge.

Every answer except the URL comes from ``.oso-source.json``; ``--table`` and ``--exclude`` add to the recorded
selection (and are recorded). Tables already in the package keep their recorded cursor and key; new tables get
the automatic choice, or ``--incremental``/``--primary-key``. Nothing is written when a merge conflicts.
"""

from __future__ import annotations

import glob
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from oso_dagster.cli.options import shell_path
from oso_dagster.errors import TemplateError
from oso_dagster.scaffold.answers import SourceSpec, TableSpec, table_summary
from oso_dagster.utils.redact import mask_url


def _say(message: str) -> None:
    click.echo(message, err=True)


def update_package(project: Path, database_url: str | None, *, name: str | None, interactive: bool,
                   tables: tuple[str, ...] = (), excludes: tuple[str, ...] = (),
                   keys: dict[str, list[str]] | None = None, overrides: dict[str, str] | None = None) -> None:
    """Update ``project`` for today's database; ``tables`` and ``excludes`` add to the recorded selection."""
    from oso_dagster.scaffold.introspect import apply_overrides, introspect
    from oso_dagster.scaffold.update import plan_update, read_answers, read_base, render_files, staging_columns

    answers = read_answers(project)
    base = read_base(project)
    source = answers["source_name"]
    if name is not None and name != source:
        raise TemplateError(f"{project} holds source {source!r}, not {name!r}; drop NAME or fix --update.")
    if database_url is None:
        if not interactive:
            raise TemplateError("--update needs --database-url to read the tables again (it is never stored).")
        database_url = click.prompt("Database URL to read table definitions from", hide_input=True)
    recorded = {t["table"]: t for t in answers["tables"]}
    all_tables = bool(answers.get("all_tables"))
    added = [t for t in dict.fromkeys(tables) if t not in recorded]
    named = {glob.escape(t) for t in added}  # a table left out in the picker, now asked for by name
    exclude = [p for p in dict.fromkeys([*(answers.get("exclude") or []), *excludes]) if p not in named]
    wanted = [*recorded, *added]
    result = introspect(
        database_url, schema=answers.get("schema"), tables=() if all_tables else wanted,
        exclude=exclude, include_views=bool(answers.get("include_views")), missing_ok=True, progress=_say,
    )
    if all_tables:  # views named on their own are not in the listing: read them by name
        known = {t.name for t in result.tables}
        others = [t for t in wanted if t not in known and (t in added or recorded.get(t, {}).get("view"))]
        if others:
            extra = introspect(database_url, schema=answers.get("schema"), tables=others, exclude=exclude,
                               include_views=True, missing_ok=True, progress=_say)
            result = replace(result, tables=[*result.tables, *extra.tables], missing=extra.missing,
                             seconds=result.seconds + extra.seconds)
    _say(f"Reflected {len(result.tables)} table(s) from {mask_url(database_url)} in {result.seconds:.1f}s.")
    not_found = [t for t in added if t in result.missing]
    if not_found:
        raise TemplateError(f"--table {', '.join(not_found)}: not found in the database's "
                            f"{'schema ' + repr(result.schema) if result.schema else 'default schema'}; "
                            "check the name (names are case-sensitive).")
    left_out = [t for t in added if t not in {s.name for s in result.tables}]
    if left_out:
        raise TemplateError(f"--table {', '.join(left_out)}: left out by an --exclude pattern "
                            f"({', '.join(exclude)}); name another table or drop the pattern.")
    specs = [_keep_recorded(spec, recorded.get(spec.name)) for spec in result.tables]
    if not specs:
        raise TemplateError(
            f"None of {source}'s tables ({', '.join(recorded) or 'none recorded'}) is in the database any more "
            f"({mask_url(database_url)}). Check --database-url, or remove the package (docs/scaffolding.md, "
            "\"Removing a package\"). Nothing was written."
        )
    apply_overrides(specs, overrides or {}, introspected=True, keys=keys)
    spec = SourceSpec(
        name=source, secret_group=answers["secret_group"], secret_key=answers["secret_key"],
        schema=result.schema, tables=specs, introspected=True, exclude=exclude,
        include_views=bool(answers.get("include_views")), all_tables=all_tables, cdc=bool(answers.get("cdc")),
    )
    spec.validate()
    new = render_files(spec)
    plan = plan_update(project, base, new)
    if plan.conflicts:
        raise TemplateError(
            "Nothing was written: these hand edits overlap what the update changes. Resolve them (or commit and "
            "move the edit aside), then rerun:\n  " + "\n  ".join(plan.conflicts)
        )
    from oso_dagster.scaffold.update import apply_plan

    apply_plan(project, plan, new)
    click.echo(f"Updated {project} (template {answers.get('template_version')} -> "
               f"{_new_version(new)}). Tables:")
    for line in table_summary(specs):
        click.echo(line)
    _report(source, recorded, specs, staging_columns(base, source), staging_columns(new, source), plan, exclude)
    click.echo(f"\nNext:\n  pip install --force-reinstall --no-deps {shlex.quote(shell_path(project))}")


def _keep_recorded(spec: TableSpec, recorded: dict[str, Any] | None) -> TableSpec:
    """A table already in the package keeps the cursor and key its answers record, if its columns still exist."""
    if recorded is None:
        return spec
    names = {c.name for c in spec.columns or []}
    key = recorded.get("primary_key")
    lost_key = [c for c in key or [] if c not in names]
    if key and not lost_key:
        spec.primary_key, spec.key_option = list(key), True
    cursor = recorded.get("incremental")
    if cursor == spec.cursor:
        pass  # the same choice as today's: keep today's evidence
    elif cursor is None:
        spec.cursor, spec.cursor_reason = None, "kept from the package"
    elif cursor in names and spec.primary_key:
        spec.cursor, spec.cursor_reason = cursor, "kept from the package"
    elif cursor not in names:
        spec.cursor, spec.cursor_reason = None, f"its recorded cursor {cursor!r} is gone: now full refresh"
    elif lost_key:
        spec.cursor, spec.cursor_reason = None, (
            f"its recorded primary key column(s) {', '.join(map(repr, lost_key))} are gone, so changed rows "
            f"could not be merged on cursor {cursor!r}: now full refresh (--primary-key {spec.name}=COLUMN "
            "names another key)")
    else:
        spec.cursor, spec.cursor_reason = None, (
            f"it has no primary key any more, so changed rows could not be merged on cursor {cursor!r}: now full "
            f"refresh (--primary-key {spec.name}=COLUMN names one)")
    return spec


def _new_version(files: dict[str, str]) -> str:
    import json

    return str(json.loads(files[".oso-source.json"])["template_version"])


def _report(source: str, recorded: dict[str, Any], specs: list[TableSpec], before: dict[str, list[str]],
            after: dict[str, list[str]], plan: Any, exclude: list[str]) -> None:
    from oso_dagster.scaffold.introspect import apply_excludes

    names = {t.name for t in specs}
    added = [t.name for t in specs if t.name not in recorded]
    missing = [name for name in recorded if name not in names]
    kept_by_patterns = set(apply_excludes(missing, exclude))
    excluded = [name for name in missing if name not in kept_by_patterns]
    gone = [name for name in missing if name in kept_by_patterns]
    lines = []
    if added:
        lines.append(f"New tables: {', '.join(added)}")
    if excluded:
        lines.append(f"Left out by --exclude: {', '.join(excluded)} (their generated entries were removed; the "
                     "warehouse keeps the data)")
    if gone:
        lines.append(f"Gone from the database: {', '.join(gone)} (their generated entries were removed; the "
                     "warehouse keeps the data)")
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
