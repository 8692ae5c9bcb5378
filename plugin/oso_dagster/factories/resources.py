"""The Dagster resource that hands run time its settings: read once when a run starts, passed by value.

Bound to every ``sql_assets`` definition (and served by the code location to the staging assets and
checks), so a run never re-reads the environment halfway, and definitions load without reading secrets.
"""

from __future__ import annotations

from dagster import InitResourceContext, resource

from oso_dagster.settings import Settings

SETTINGS_RESOURCE_KEY = "oso_settings"


@resource(description="oso_dagster's settings (OSO_* variables), read once when a run starts.")
def settings_resource(_: InitResourceContext) -> Settings:
    return Settings.from_env()

