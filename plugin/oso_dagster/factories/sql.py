"""``sql_assets``: a SQL database's tables as one Dagster multi-asset, replicated by dlt's ``sql_database``.

Definition time only builds specs from the configuration: no secret is resolved and no database is
touched until a run starts (see :mod:`oso_dagster.run.replicate`).
"""


import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    BetaWarning,
    Jitter,
    RetryPolicy,
    multi_asset,
)

from oso_dagster.errors import ConfigurationError
from oso_dagster.factories.config import SourceOptions, SqlSource, parse_tables
from oso_dagster.factories.resources import SETTINGS_RESOURCE_KEY, settings_resource
from oso_dagster.factories.translator import asset_key, table_asset_spec
from oso_dagster.settings import Settings
from oso_dagster.utils.secrets import SecretReference

SOURCE_METADATA_KEY = "oso/sql_source"
CDC_CHECK_NAME = "cdc_log_retention"


def source_of(assets_def: AssetsDefinition) -> SqlSource | None:
    """The :class:`SqlSource` behind an ``AssetsDefinition`` made by :func:`sql_assets`, else ``None``.

    It travels in the specs' metadata (as dagster-dlt carries its source), so it survives
    ``with_attributes`` and any other copy Dagster makes of the definition.
    """
    for spec in assets_def.specs:
        found = spec.metadata.get(SOURCE_METADATA_KEY)
        if isinstance(found, SqlSource):
            return found
    return None


def sql_assets(
    name: str,
    secret_ref: SecretReference,
    tables: Sequence[Mapping[str, Any]],
    **options: Any,
) -> AssetsDefinition:
    """Replicate ``tables`` of the database behind ``secret_ref`` into the warehouse dataset ``name``.

    Args:
        name: Source name: the warehouse dataset/schema, the asset key prefix and the asset group.
        secret_ref: Where the SQLAlchemy connection string lives, e.g.
            ``SecretReference(group_name="mydb", key="db_connection_string")``.
        tables: One dict per table; see :class:`~oso_dagster.factories.config.TableOptions`.
        **options: Source-level options; see :class:`~oso_dagster.factories.config.SourceOptions`
            (``concurrency``, ``pool``, ``schema``, ``backend``, ``chunk_size``, ``description``,
            ``schedule``, ``freshness_hours``, ``row_count_tolerance``, ``retries``, ``retry_delay_s``).

    Returns:
        One multi-asset with an asset ``[name, <table>]`` per table, subsettable per table.

    Example:
        >>> from dlt.sources import incremental
        >>> my_database = sql_assets(
        ...     "mydb",
        ...     SecretReference(group_name="mydb", key="db_connection_string"),
        ...     [{"table": "events", "incremental": incremental("time")}, {"table": "users"}],
        ... )
    """
    if not isinstance(secret_ref, SecretReference):
        raise ConfigurationError(
            f"sql_assets({name!r}): the second argument must be a SecretReference, e.g. "
            f"SecretReference(group_name={name!r}, key='db_connection_string')."
        )
    source_options = SourceOptions.parse(str(name), options)
    configs = parse_tables(name, tables, source_options)
    source = SqlSource(name=name, secret=secret_ref, tables=tuple(configs), options=source_options)
    destination = Settings.from_env().destination
    specs = [table_asset_spec(name, config, destination, secret_ref.label).merge_attributes(
        metadata={SOURCE_METADATA_KEY: source}) for config in configs]

    with warnings.catch_warnings():  # resource_defs is "beta"; Dagster is pinned exactly (pyproject.toml)
        warnings.simplefilter("ignore", BetaWarning)
        decorate = multi_asset(
            name=f"replicate_{name}",
            specs=specs,
            check_specs=_cdc_check_specs(name, configs, source_options),
            can_subset=True,
            pool=source_options.pool_for(name),
            resource_defs={SETTINGS_RESOURCE_KEY: settings_resource},
            description=source_options.description or f"Replicate source `{name}` with dlt.",
            # Transient source errors (connection refused/reset, timeouts) are retried with backoff;
            # permanent ones (login refused, missing table, bad configuration) fail at once.
            retry_policy=RetryPolicy(
                max_retries=source_options.retries,
                delay=source_options.retry_delay_s,
                backoff=Backoff.EXPONENTIAL,
                jitter=Jitter.PLUS_MINUS,
            )
            if source_options.retries
            else None,
        )

    @decorate
    def _replicate(context: AssetExecutionContext):
        from oso_dagster.run.replicate import replicate  # heavy imports happen in the run, not at load

        yield from replicate(context, source, getattr(context.resources, SETTINGS_RESOURCE_KEY))

    return _replicate


def _cdc_check_specs(name: str, configs: Sequence[Any], options: SourceOptions) -> list[AssetCheckSpec] | None:
    """One check per CDC source, evaluated by the sync itself, on its first CDC table."""
    first = next((config for config in configs if config.cdc), None)
    if first is None:
        return None
    return [AssetCheckSpec(
        CDC_CHECK_NAME, asset=asset_key(name, first),
        description=f"The change log held for source {name} before a sync stays within bounds (PostgreSQL: "
                    f"retained WAL <= {options.cdc_max_retained_wal_mb:g} MB; MySQL/MariaDB: syncs at least "
                    "twice per binlog expiry).",
    )]
