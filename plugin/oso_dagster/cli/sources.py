"""``oso-sources``: list installed source packages and check them against their databases."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from oso_dagster.errors import ConfigurationError, OsoDagsterError
from oso_dagster.location.dbt_manifest import start
from oso_dagster.location.dbt_project import BrokenDbtPackage
from oso_dagster.location.discovery import Discovery, discover
from oso_dagster.location.entry_points import installed_dbt_packages, same_distribution
from oso_dagster.naming import mode_label, warehouse_name
from oso_dagster.ops.cdc import drop_cdc
from oso_dagster.ops.health import instance_available, source_health
from oso_dagster.ops.preflight import check_source
from oso_dagster.ops.reset import reset_table
from oso_dagster.settings import Settings

_MARK = {"ok": "ok  ", "warn": "WARN", "error": "FAIL"}


@click.group(
    epilog="Examples:\n\n  oso-sources list\n\n  oso-sources check mydb\n\n  oso-sources dbt-package mydb\n\n"
    "  oso-sources reset-table mydb events\n\n  oso-sources drop-cdc mydb",
)
def main() -> None:
    """Inspect the source packages installed in this environment."""
    # Bad settings are the environment's fault, not a package's: say so before discovery blames a package.
    try:
        Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("list")
def list_sources() -> None:
    """Show discovered sources, their tables, incremental columns and package versions.

    With DAGSTER_HOME set, also each table's last successful sync, rows loaded and failing checks.
    Exits 1 when an installed source package is broken, or its dbt staging models do not parse (it is
    listed with the reason).
    """
    try:
        settings = Settings.from_env()
        found = discover(on_broken="warn")
        left_out = staging_left_out(settings)
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    if not found.packages and not found.errors:
        click.echo("No source packages installed. Create one with `oso-new-source NAME` and pip install it.")
    for package in found.packages:
        for source in package.sources:
            broken = any(same_distribution(b.distribution, package.distribution) for b in left_out)
            models = "BROKEN" if broken else "yes" if package.dbt_dir else "no"
            click.echo(f"{source.name}  ({package.distribution} {package.version}; dbt models: {models}; "
                       f"secret {source.secret.label})")
            health = source_health(source, settings) if instance_available(settings) else {}
            for table in source.tables:
                mode = mode_label(table.cursor_column)
                line = f"  {table.qualified_name:<32} -> {source.name}.{table.landing_name:<28} {mode:<28}"
                state = health.get(table.landing_name)
                if state is not None:
                    synced = state.last_sync.strftime("%Y-%m-%d %H:%M UTC") if state.last_sync else "never synced"
                    rows = f"{state.rows_loaded:,} rows" if state.rows_loaded is not None else ""
                    failing = f"FAILING: {', '.join(state.failing_checks)}" if state.failing_checks else ""
                    line += "  " + "  ".join(part for part in (synced, rows, failing) if part)
                click.echo(line.rstrip())
    for error in [*found.errors, *(b.message for b in left_out)]:
        click.echo(f"BROKEN: {error}", err=True)
    if found.errors or left_out:
        sys.exit(1)


def staging_left_out(settings: Settings) -> tuple[BrokenDbtPackage, ...]:
    """Packages whose staging models the code location leaves out (the cached parse, or a fresh one)."""
    staging = start(settings, installed_dbt_packages()).result()
    return staging.broken if staging is not None else ()


@main.command("check")
@click.argument("name", required=False)
def check(name: str | None) -> None:
    """Check that each source's secret resolves, its database answers and its tables are as configured.

    Exits 0 when everything passed (warnings allowed), 1 when a check failed, 2 for an unknown NAME.
    """
    try:
        found = discover()
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    sources = [s for p in found.packages for s in p.sources]
    if name is not None:
        sources = [s for s in sources if s.name == name]
        if not sources:
            _unknown_source(found, name)
    failed = False
    for source in sources:
        click.echo(f"{source.name}:")
        for finding in check_source(source):
            failed |= finding.level == "error"
            click.echo(f"  {_MARK[finding.level]} {finding.subject}: {finding.message}")
    sys.exit(1 if failed else 0)


@main.command("dbt-package")
@click.argument("name")
def dbt_package(name: str) -> None:
    """Print the packages.yml entry that makes source NAME's staging models a package of your own dbt project.

    Add it to your project's packages.yml, run `dbt deps`, then ref('stg_NAME__<table>') from your models;
    your profile must point at the warehouse the source replicates into (see docs/scaffolding.md).
    """
    try:
        found = discover(on_broken="warn")
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    for package in found.packages:
        if any(source.name == name for source in package.sources):
            if package.dbt_dir is None:
                raise click.ClickException(f"{package.distribution} (source {name!r}) ships no dbt project.")
            import yaml

            entry = yaml.safe_dump({"packages": [{"local": str(package.dbt_dir)}]}, sort_keys=False)
            click.echo(f"# {package.distribution} {package.version}: the staging models of source {name}\n"
                       + entry.rstrip())
            return
    _unknown_source(found, name)


def _unknown_source(found: Discovery, name: str) -> NoReturn:
    """Exit 2 naming the installed sources (``check``, ``dbt-package``, ``drop-cdc``)."""
    known = ", ".join(sorted(s.name for p in found.packages for s in p.sources)) or "none installed"
    click.echo(f"Error: no source named {name!r} (installed: {known}).", err=True)
    sys.exit(2)


@main.command("reset-table")
@click.argument("source_name", metavar="SOURCE")
@click.argument("table")
def reset_table_command(source_name: str, table: str) -> None:
    """Drop TABLE's warehouse copy and incremental cursor (or CDC snapshot state); the next run of SOURCE loads
    it in full.

    TABLE is the name it lands under in the warehouse (or the source table's name). The fix that a failed
    run names after a column type change that cannot be applied in place. Works for sources of installed
    packages and of dg components alike: it reads only the warehouse.
    """
    try:
        reset_table(source_name, table)
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Reset {source_name}.{warehouse_name(table)}: its warehouse copy and cursor are gone; the next run "
               "of the source loads it in full.")


@main.command("drop-cdc")
@click.argument("source_name", metavar="SOURCE")
def drop_cdc_command(source_name: str) -> None:
    """Remove SOURCE's change data capture: its PostgreSQL replication slot and publication (oso_SOURCE) and
    its CDC state in the warehouse; the next sync copies every CDC table again.

    Run it before removing a CDC source (a slot left behind keeps WAL on the server for ever), after turning
    cdc off, or to start CDC again from a new snapshot. MySQL/MariaDB keep nothing per source on the server:
    only the warehouse state is forgotten.
    """
    try:
        found = discover(on_broken="warn")
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    source = next((s for p in found.packages for s in p.sources if s.name == source_name), None)
    if source is None:
        _unknown_source(found, source_name)
    try:
        dropped = drop_cdc(source)
    except OsoDagsterError as exc:
        raise click.ClickException(str(exc)) from None
    for item in dropped.on_server:
        click.echo(f"Dropped {item}.")
    if dropped.dialect in ("mysql", "mariadb"):
        click.echo(f"{dropped.dialect}: the server keeps no CDC state per source (the binlog position lives in "
                   "the warehouse), so only the warehouse state is forgotten.")
    elif dropped.dialect == "postgresql" and not dropped.on_server:
        click.echo(f"No replication slot or publication oso_{source_name} on the server.")
    if dropped.state_table:
        click.echo(f"Forgot the CDC state in the warehouse ({dropped.state_table}).")
    else:
        click.echo("The warehouse held no CDC state for the source.")
    click.echo(f"The next sync of {source_name} copies every CDC table again (a new snapshot), then follows "
               "the change log from there.")
