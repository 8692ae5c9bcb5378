"""``oso-new-source``: scaffold a source package (replication + dbt staging) from the cookiecutter template.

Every input is checked before anything is written, so a refused run leaves no folder behind. The
database URL is used only to read table definitions: it is masked in every message and never written.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import click

from oso_dagster.cli.options import parse_table_values, shell_path
from oso_dagster.errors import OsoDagsterError, TemplateError
from oso_dagster.naming import check_source_name
from oso_dagster.scaffold.answers import DEFAULT_SECRET_KEY, PROJECT_DIR_PREFIX, SourceSpec, TableSpec, table_summary
from oso_dagster.scaffold.render import check_target, dropped_models, generate
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
  # every table except archives; a view with a key, read incrementally
  oso-new-source shop --database-url mysql://reader@db/shop --exclude 'archive_*' \\
      --table orders --table v_orders --primary-key v_orders=id --incremental v_orders=updated_at
\b
  # pick up new tables and columns, keeping hand edits (answers from .oso-source.json)
  oso-new-source --update ./oso-source-mydb --database-url postgresql://reader@db.internal:5432/app
\b
  # add a table to a package (recorded, so later updates keep it)
  oso-new-source --update ./oso-source-mydb --database-url postgresql://reader@db.internal:5432/app \\
      --table refunds
\b
  # change data capture: inserts, updates and deletes from the change log
  oso-new-source mydb --database-url postgresql://reader@db.internal:5432/app --cdc
\b
  # regenerate the template's files in an existing package (others kept; the
  # staging models of tables no longer listed are removed, edited or not: said so)
  oso-new-source mydb --database-url sqlite:///app.db --force
"""


def _parse_keys(values: tuple[str, ...]) -> dict[str, list[str]]:
    return parse_table_values("--primary-key", values, many=True, example="v_orders=id")


def _parse_incremental(values: tuple[str, ...]) -> dict[str, str]:
    parsed = parse_table_values("--incremental", values, many=False, example="events=updated_at")
    return {table: columns[0] for table, columns in parsed.items()}


# Options --update takes; every other answer is the package's own, recorded in .oso-source.json.
UPDATE_OPTIONS = frozenset({"name", "database_url", "tables", "excludes", "keys", "incrementals", "no_input",
                            "update_dir"})


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command(epilog=EPILOG,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("name", required=False)
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the oso-source-NAME folder.")
@click.option("--database-url", metavar="URL",
              help="SQLAlchemy URL to read table definitions from while generating (never written anywhere).")
@click.option("--schema", help="Source schema to read (default: the connection's default schema).")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Replicate this table (repeatable). Default with --database-url: every table of the "
                   "schema.")
@click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
              help="Leave out tables matching this glob, e.g. 'tmp_*' (repeatable).")
@click.option("--include-views", is_flag=True,
              help="Offer views too (a view named with --table is always accepted).")
@click.option("--primary-key", "keys", multiple=True, metavar="TABLE=COLUMN[,COLUMN]",
              help="The columns identifying a row of TABLE, for a view or a table without a primary key "
                   "(repeatable); written into assets.py.")
@click.option("--incremental", "incrementals", multiple=True, metavar="TABLE=COLUMN",
              help="Read TABLE incrementally on COLUMN (repeatable); overrides the cursor chosen "
                   "automatically.")
@click.option("--secret-group", help="Secret group holding the connection string.  [default: NAME]")
@click.option("--secret-key",
              help=f"Secret key holding the connection string.  [default: {DEFAULT_SECRET_KEY}]")
@click.option("--cdc", is_flag=True,
              help="Change data capture: the package passes cdc=True to sql_assets, so inserts, updates and "
                   "deletes are read from the database's change log (PostgreSQL, MySQL/MariaDB; docs/cdc.md).")
@click.option("--no-input", is_flag=True, help="Never prompt; use the options and defaults.")
@click.option("--force", is_flag=True,
              help="Write into an existing folder, overwriting only the files the template generates and "
                   "removing the staging models it generated for tables no longer listed.")
@click.option("--update", "update_dir", type=click.Path(file_okay=False, path_type=Path), metavar="PACKAGE_DIR",
              help="Re-read the database for an existing package and add new tables and columns, keeping hand "
                   "edits (three-way merge). --table and --exclude add to the recorded selection, "
                   "--primary-key and --incremental set a table's key and cursor; the other answers come from "
                   "its .oso-source.json (other options are refused).")
def new_source(
    name: str | None,
    output_dir: Path,
    database_url: str | None,
    schema: str | None,
    tables: tuple[str, ...],
    excludes: tuple[str, ...],
    include_views: bool,
    keys: tuple[str, ...],
    incrementals: tuple[str, ...],
    secret_group: str | None,
    secret_key: str | None,
    cdc: bool,
    no_input: bool,
    force: bool,
    update_dir: Path | None,
) -> None:
    """Create oso-source-NAME: a pip-installable source package replicating a SQL database with dlt
    and staging it with dbt.

    NAME is the source name: the warehouse dataset, the Dagster asset key prefix and group. It must be
    a lowercase Python identifier such as mydb or sales_db.
    """
    secrets = [database_url] if database_url else []
    try:
        if update_dir is not None:
            from oso_dagster.cli.update_source import update_package

            _refuse_with_update(click.get_current_context())
            update_package(update_dir, database_url, name=name, interactive=not no_input, tables=tables,
                           excludes=excludes, keys=_parse_keys(keys), overrides=_parse_incremental(incrementals))
            return
        if name is None:
            if no_input:
                raise TemplateError("Missing NAME: give the source name, e.g. `oso-new-source mydb ...`.")
            name = click.prompt("Source name (lowercase, e.g. mydb; the warehouse dataset and asset group)")
        _run(name, output_dir, database_url, schema, tables, incrementals, secret_group, secret_key,
             no_input, force, excludes=excludes, include_views=include_views, keys=_parse_keys(keys), cdc=cdc)
    except (OsoDagsterError, ValueError) as exc:  # ValueError: check_source_name
        raise click.ClickException(scrub(str(exc), secrets)) from None


def _refuse_with_update(ctx: click.Context) -> None:
    """--update takes its answers from the package; an option that would change them is refused, not ignored."""
    given = [param for param in ctx.command.params
             if param.name not in UPDATE_OPTIONS and ctx.get_parameter_source(param.name or "")
             not in (None, click.core.ParameterSource.DEFAULT)]
    if given:
        names = ", ".join(param.opts[0] for param in given)
        raise TemplateError(
            f"--update takes these answers from the package's .oso-source.json: drop {names}. With --update, "
            "give only --database-url, --table, --exclude, --primary-key, --incremental and --no-input; to "
            "change another answer, rerun oso-new-source NAME --force with every option (docs/scaffolding.md)."
        )


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
    *,
    excludes: tuple[str, ...] = (),
    include_views: bool = False,
    keys: dict[str, list[str]] | None = None,
    cdc: bool = False,
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
        from oso_dagster.scaffold.introspect import introspect

        assert database_url is not None
        result = introspect(database_url, schema=schema, tables=tables, exclude=excludes,
                            include_views=include_views, progress=_say)
        _say(f"Reflected {len(result.tables)} table(s) from {mask_url(database_url)} "
             f"in {result.seconds:.1f}s.")
        specs = result.tables
        schema = result.schema
        if interactive and not tables:
            from oso_dagster.cli.choose import choose_tables

            specs = choose_tables(specs)
            chosen = {t.name for t in specs}
            # recorded, so that --update does not bring back what the user left out
            excludes = (*excludes, *(glob.escape(t.name) for t in result.tables if t.name not in chosen))
    else:
        if not tables and interactive:
            answer = click.prompt("Tables to replicate (comma-separated)")
            tables = tuple(t.strip() for t in answer.split(",") if t.strip())
        specs = [TableSpec(name=t) for t in dict.fromkeys(tables)]
        if schema is not None and not schema.strip():
            schema = None

    from oso_dagster.scaffold.introspect import apply_overrides

    apply_overrides(specs, overrides, introspected=introspected, keys=keys)
    if interactive and introspected and not tables:
        from oso_dagster.cli.choose import confirm_cursors

        confirm_cursors(specs)
    spec = SourceSpec(name=name, secret_group=secret_group, secret_key=secret_key, schema=schema,
                      tables=specs, introspected=introspected, exclude=list(excludes),
                      include_views=include_views, all_tables=introspected and not tables, cdc=cdc)
    spec.validate()
    started = time.monotonic()
    dropped = dropped_models(target, spec)
    project = generate(spec, output_dir, force=force, dropped=dropped)
    from oso_dagster.scaffold.update import render_files, write_base

    write_base(project, render_files(spec))
    click.echo(f"Created {project} in {time.monotonic() - started:.1f}s. Tables:")
    for line in table_summary(specs):
        click.echo(line)
    if dropped:
        click.echo("Removed the staging models generated for tables no longer replicated:")
        for model in dropped:
            note = ("   (edited by hand: its source table is gone, so dbt could not parse it; restore your edit "
                    "from version control if you need it)") if model.edited else ""
            click.echo(f"  {model.path}{note}")
    if any(t.view and not t.cursor for t in specs):
        click.echo("  Views are read in full on every run: name a cursor and a key (--incremental VIEW=COLUMN "
                   "--primary-key VIEW=COLUMN) to read one incrementally.")
    click.echo(next_steps(output_dir / project.name, name, secret_group, secret_key))


def next_steps(project: Path, name: str, secret_group: str, secret_key: str) -> str:
    """The commands to run after scaffolding; each line is a shell command as printed (a test runs them)."""
    import shlex

    from oso_dagster.utils.secrets import SecretReference

    env_var = SecretReference(group_name=secret_group, key=secret_key).env_var
    path = shell_path(project)
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
    main()
