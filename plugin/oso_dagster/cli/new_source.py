"""``oso-new-source``: scaffold a source package (replication + dbt staging) from the cookiecutter template.

Every input is checked before anything is written, so a refused run leaves no folder behind. The
database URL is used only to read table definitions: it is masked in every message and never written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from oso_dagster.errors import OsoDagsterError, TemplateError
from oso_dagster.naming import check_source_name
from oso_dagster.template import (
    DEFAULT_SECRET_KEY,
    PROJECT_DIR_PREFIX,
    SourceSpec,
    TableSpec,
    check_target,
    generate,
    table_summary,
)
from oso_dagster.utils.redact import mask_url, scrub

EPILOG = """\b
Examples:
  # introspect a database: all tables, cursors chosen where obvious
  oso-new-source mydb --database-url postgresql://reader@db.internal:5432/app
\b
  # only two tables, one of them incremental on a column you choose
  oso-new-source shop --database-url mysql://reader@db/shop \\
      --table orders --table customers --incremental orders=updated_at
\b
  # no database at hand: name the tables; columns are listed once known
  oso-new-source crm --table accounts --table contacts --no-input
\b
  # regenerate the template's files in an existing package (others kept)
  oso-new-source mydb --database-url sqlite:///app.db --force
"""


def _parse_incremental(values: tuple[str, ...]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for value in values:
        table, sep, column = value.partition("=")
        if not sep or not table.strip() or not column.strip():
            raise TemplateError(f"--incremental {value!r} must be TABLE=COLUMN, e.g. events=updated_at.")
        overrides[table.strip()] = column.strip()
    return overrides


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command(epilog=EPILOG,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("name")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the oso-source-NAME folder.")
@click.option("--database-url", metavar="URL",
              help="SQLAlchemy URL to read table definitions from while generating (never written anywhere).")
@click.option("--schema", help="Source schema to read (default: the connection's default schema).")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Replicate this table (repeatable). Default with --database-url: every table of the "
                   "schema.")
@click.option("--incremental", "incrementals", multiple=True, metavar="TABLE=COLUMN",
              help="Read TABLE incrementally on COLUMN (repeatable); overrides the cursor chosen "
                   "automatically.")
@click.option("--secret-group", help="Secret group holding the connection string.  [default: NAME]")
@click.option("--secret-key",
              help=f"Secret key holding the connection string.  [default: {DEFAULT_SECRET_KEY}]")
@click.option("--no-input", is_flag=True, help="Never prompt; use the options and defaults.")
@click.option("--force", is_flag=True,
              help="Write into an existing folder, overwriting only the files the template generates.")
def new_source(
    name: str,
    output_dir: Path,
    database_url: str | None,
    schema: str | None,
    tables: tuple[str, ...],
    incrementals: tuple[str, ...],
    secret_group: str | None,
    secret_key: str | None,
    no_input: bool,
    force: bool,
) -> None:
    """Create oso-source-NAME: a pip-installable source package replicating a SQL database with dlt
    and staging it with dbt.

    NAME is the source name: the warehouse dataset, the Dagster asset key prefix and group. It must be
    a lowercase Python identifier such as mydb or sales_db.
    """
    secrets = [database_url] if database_url else []
    try:
        _run(name, output_dir, database_url, schema, tables, incrementals, secret_group, secret_key,
             no_input, force)
    except (OsoDagsterError, ValueError) as exc:  # ValueError: check_source_name
        raise click.ClickException(scrub(str(exc), secrets)) from None


def _run(
    name: str,
    output_dir: Path,
    database_url: str | None,
    schema: str | None,
    tables: tuple[str, ...],
    incrementals: tuple[str, ...],
    secret_group: str | None,
    secret_key: str | None,
    no_input: bool,
    force: bool,
) -> None:
    check_source_name(name)
    overrides = _parse_incremental(incrementals)
    target = output_dir / f"{PROJECT_DIR_PREFIX}{name}"
    check_target(target, force=force)
    interactive = not no_input
    if secret_group is None:
        secret_group = click.prompt("Secret group", default=name) if interactive else name
    if secret_key is None:
        secret_key = (click.prompt("Secret key", default=DEFAULT_SECRET_KEY) if interactive
                      else DEFAULT_SECRET_KEY)
    # Checked now, not after a long introspection.
    SourceSpec(name=name, secret_group=secret_group, secret_key=secret_key,
               tables=[TableSpec("x")]).validate()
    if database_url is None and interactive:
        database_url = click.prompt(
            "Database URL to read table definitions from (empty: skip)", default="", show_default=False,
            hide_input=True,
        ) or None
    if schema is None and interactive and database_url:
        schema = click.prompt("Schema (empty: the connection's default)", default="",
                              show_default=False) or None

    introspected = database_url is not None
    if introspected:
        from oso_dagster.introspect import introspect

        assert database_url is not None
        result = introspect(database_url, schema=schema, tables=tables, progress=_say)
        _say(f"Reflected {len(result.tables)} table(s) from {mask_url(database_url)} "
             f"in {result.seconds:.1f}s.")
        specs = result.tables
        schema = result.schema
    else:
        if not tables and interactive:
            answer = click.prompt("Tables to replicate (comma-separated)")
            tables = tuple(t.strip() for t in answer.split(",") if t.strip())
        specs = [TableSpec(name=t) for t in dict.fromkeys(tables)]
        if schema is not None and not schema.strip():
            schema = None

    from oso_dagster.introspect import apply_overrides

    apply_overrides(specs, overrides, introspected=introspected)
    spec = SourceSpec(name=name, secret_group=secret_group, secret_key=secret_key, schema=schema,
                      tables=specs, introspected=introspected)
    spec.validate()
    started = time.monotonic()
    project = generate(spec, output_dir, force=force)
    click.echo(f"Created {project} in {time.monotonic() - started:.1f}s. Tables:")
    for line in table_summary(specs):
        click.echo(line)
    click.echo(next_steps(output_dir / project.name, name, secret_group, secret_key))


def next_steps(project: Path, name: str, secret_group: str, secret_key: str) -> str:
    """The commands to run after scaffolding; each line is a shell command as printed (a test runs them)."""
    import shlex

    from oso_dagster.utils.secrets import SecretReference

    env_var = SecretReference(group_name=secret_group, key=secret_key).env_var
    # "./" keeps pip from taking a bare folder name for a package on PyPI.
    path = str(project) if project.is_absolute() or str(project).startswith(".") else f"./{project}"
    return (
        f"\nNext:\n  pip install {shlex.quote(path)}\n"
        f"  export {env_var}='<SQLAlchemy URL>'   # or a secrets file / GCP: see {shlex.quote(path + '/README.md')}\n"
        f"  oso-sources check {name}\n"
        f"  dagster asset materialize -m oso_dagster.definitions --select group:{name}"
    )


def main() -> None:
    """Console-script entry point."""
    new_source(prog_name="oso-new-source")


if __name__ == "__main__":
    sys.exit(main())
