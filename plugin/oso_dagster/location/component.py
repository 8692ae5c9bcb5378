"""``SqlSourceComponent``: one database as a Dagster ``dg`` component, the YAML twin of :func:`sql_assets`.

A ``defs.yaml`` takes exactly what ``sql_assets`` takes, so a team with its own ``dg`` project gets the same
replication assets, checks and schedule as an installed ``oso-source-*`` package, without a package. The
component only translates YAML into ``sql_assets`` arguments; every rule and error stays in
:mod:`oso_dagster.factories.config`. Loading it connects to nothing and resolves no secret.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import Component, ComponentLoadContext, Definitions, Resolvable, Scaffolder, scaffold_component
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with
from pydantic import BaseModel

from oso_dagster.errors import ConfigurationError
from oso_dagster.factories.config import SqlSource
from oso_dagster.factories.sql import source_of, sql_assets
from oso_dagster.location.asset_checks import freshness_checks, row_count_checks
from oso_dagster.location.execution import sync_schedule
from oso_dagster.settings import Settings
from oso_dagster.utils.secrets import SecretReference

DEFAULT_SECRET_KEY = "db_connection_string"
# what an `incremental:` mapping may hold: the arguments of dlt.sources.incremental that YAML can express
INCREMENTAL_KEYS = ("cursor_path", "initial_value", "end_value", "row_order", "on_cursor_value_missing", "lag")


class SqlSourceScaffoldParams(BaseModel):
    """``dg scaffold defs oso_dagster.SqlSourceComponent PATH --json-params '{"name": …, "tables": […]}'``."""

    name: str | None = None
    tables: list[str] | None = None


@dataclass
class SecretModel(Resolvable):
    """Where the SQLAlchemy connection string lives (the same lookup as ``SecretReference``)."""

    group_name: str
    key: str = DEFAULT_SECRET_KEY


class SqlSourceScaffolder(Scaffolder[SqlSourceScaffoldParams]):
    """Writes a ``defs.yaml`` with the source name (default: the folder's) and a table list to fill in."""

    @classmethod
    def get_scaffold_params(cls) -> type[SqlSourceScaffoldParams]:
        return SqlSourceScaffoldParams

    def scaffold(self, request: ScaffoldRequest[SqlSourceScaffoldParams]) -> None:
        params = request.params or SqlSourceScaffoldParams()
        name = params.name or Path(request.target_path).name
        tables = params.tables or ["my_table"]
        scaffold_component(
            request=request,
            yaml_attributes={
                "name": name,
                "secret": {"group_name": name, "key": DEFAULT_SECRET_KEY},
                "tables": [{"table": table} for table in tables],
            },
        )


@scaffold_with(SqlSourceScaffolder)
@dataclass
class SqlSourceComponent(Component, Resolvable):
    """Replicate tables of one SQL database into the warehouse (dlt ``sql_database`` under the hood).

    ``tables`` entries take the keys of ``sql_assets``' table dicts; ``incremental`` is the cursor column's
    name (or a mapping of ``dlt.sources.incremental`` arguments). ``options`` are ``sql_assets``' source
    options (``schema``, ``concurrency``, ``schedule``, ...).
    """

    name: str
    secret: SecretModel
    tables: Sequence[Mapping[str, Any]]
    options: Mapping[str, Any] = field(default_factory=dict)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        assets_def = sql_assets(
            self.name,
            SecretReference(group_name=self.secret.group_name, key=self.secret.key),
            [_table_entry(self.name, entry) for entry in self.tables],
            **dict(self.options),
        )
        source = source_of(assets_def)
        assert source is not None  # sql_assets always carries its source
        return Definitions(assets=[assets_def], **_checks_and_schedule(source))


def _checks_and_schedule(source: SqlSource) -> dict[str, Any]:
    settings = Settings.from_env()
    counts = row_count_checks(source, settings)
    return {
        "asset_checks": [*freshness_checks(source), *([counts] if counts is not None else [])],
        "schedules": [sync_schedule(source.name, source.options.schedule, settings)]
        if source.options.schedule else [],
    }


def _table_entry(source: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A YAML table entry as ``sql_assets`` takes it: ``incremental`` becomes ``dlt.sources.incremental``."""
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"SqlSourceComponent {source!r}: each entry of 'tables' must be a mapping such as "
            f"{{table: events, incremental: updated_at}}, got {entry!r}."
        )
    converted = dict(entry)
    cursor = converted.get("incremental")
    if cursor is None:
        return converted
    from dlt.sources import incremental

    if isinstance(cursor, str):
        converted["incremental"] = incremental(cursor)
    elif isinstance(cursor, Mapping) and "cursor_path" in cursor and set(cursor) <= set(INCREMENTAL_KEYS):
        converted["incremental"] = incremental(**dict(cursor))
    else:
        raise ConfigurationError(
            f"SqlSourceComponent {source!r} table {entry.get('table')!r}: 'incremental' must be the cursor column's "
            f"name (incremental: updated_at) or a mapping with cursor_path and any of {list(INCREMENTAL_KEYS[1:])}; "
            f"got {cursor!r}."
        )
    return converted
