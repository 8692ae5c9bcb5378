"""Interactive choices of ``oso-new-source``: which reflected tables to keep and each table's cursor.

Plain click prompts, so they work in any terminal and in tests with piped input: every table starts selected,
glob patterns narrow the list, and the proposed cursors are accepted at once or changed one by one.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import click

from oso_dagster.errors import TemplateError
from oso_dagster.scaffold.answers import TableSpec, table_summary

FULL_REFRESH = "-"


def choose_tables(specs: list[TableSpec]) -> list[TableSpec]:
    """Show the tables (all selected) and let the user keep or drop some by glob until they confirm."""
    selected = list(specs)
    while True:
        click.echo(f"\n{len(selected)} of {len(specs)} table(s) selected:")
        for line in table_summary(selected):
            click.echo(line)
        answer = click.prompt(
            "Press Enter to keep these, or type glob patterns: 'tmp_*' leaves tables out, '+audit_*' adds them back",
            default="", show_default=False,
        ).split()
        if not answer:
            if not selected:
                raise TemplateError("No table selected; rerun and keep at least one.")
            return selected
        for pattern in answer:
            if pattern.startswith("+"):
                chosen = {t.name for t in selected} | {t.name for t in specs if fnmatchcase(t.name, pattern[1:])}
            else:
                chosen = {t.name for t in selected if not fnmatchcase(t.name, pattern)}
            selected = [t for t in specs if t.name in chosen]


def confirm_cursors(specs: list[TableSpec]) -> None:
    """Accept every proposed cursor at once, or confirm or change each table's (``-``: full refresh)."""
    if click.confirm("\nAccept these modes and cursors?", default=True):
        return
    for table in specs:
        names = [c.name for c in table.columns or []]
        current = table.cursor or FULL_REFRESH
        while True:
            answer = click.prompt(f"{table.name}: cursor column ('{FULL_REFRESH}' for full refresh)", default=current)
            if answer == current:
                break
            if answer == FULL_REFRESH:
                table.cursor, table.cursor_reason = None, "chosen interactively"
                break
            if answer not in names:
                click.echo(f"  {table.name} has no column {answer!r}; its columns: {', '.join(names)}")
            elif not table.primary_key:
                click.echo(f"  {table.name} has no primary key, so changed rows could not be merged; "
                           "rerun with --primary-key to name one")
            else:
                table.cursor, table.cursor_reason = answer, "chosen interactively"
                break
