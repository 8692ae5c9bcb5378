"""Everything BigQuery-specific: dlt's destination and the dbt-bigquery profile, from the same settings."""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination import Destination

from oso_dagster.settings import Settings


def bigquery_destination(settings: Settings) -> Destination:
    """dlt's bigquery destination; Application Default Credentials unless a key file is configured."""
    kwargs: dict[str, object] = {"location": settings.bigquery_location}
    if settings.bigquery_keyfile is not None:
        kwargs["credentials"] = settings.bigquery_keyfile.read_text(encoding="utf-8")
    elif settings.bigquery_project:
        kwargs["project_id"] = settings.bigquery_project
    return dlt.destinations.bigquery(**kwargs)


def bigquery_profile_output(settings: Settings, schema: str) -> dict[str, Any]:
    """The dbt-bigquery output used when ``OSO_DESTINATION=bigquery``."""
    output: dict[str, Any] = {
        "type": "bigquery",
        "schema": schema,
        "location": settings.bigquery_location,
        "threads": 4,
        "method": "service-account" if settings.bigquery_keyfile else "oauth",
    }
    if settings.bigquery_project:
        output["project"] = settings.bigquery_project
    if settings.bigquery_keyfile:
        output["keyfile"] = str(settings.bigquery_keyfile)
    return output
