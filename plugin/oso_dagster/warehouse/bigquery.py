"""Everything BigQuery-specific: dlt's destination and the dbt-bigquery profile, from the same settings.

Credentials are Application Default Credentials unless ``OSO_BIGQUERY_KEYFILE`` names a service-account file.
Two opt-in settings exist for a BigQuery-compatible endpoint (the local emulator the tests start), read only
when set: ``OSO_BIGQUERY_API_ENDPOINT`` (base URL of the API) and ``OSO_BIGQUERY_TOKEN`` (a static OAuth
access token used instead of ADC). Neither is needed against BigQuery itself.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.impl.bigquery.factory import BigQueryTypeMapper

from oso_dagster.errors import ConfigurationError
from oso_dagster.settings import Settings

TOKEN_ENV = "OSO_BIGQUERY_TOKEN"
# google-cloud-bigquery reads its endpoint from this variable; dlt builds the client without client_options,
# so :func:`oso_dagster.warehouse.destinations.dlt_environment` sets it for the duration of a warehouse use.
CLIENT_ENDPOINT_ENV = "BIGQUERY_EMULATOR_HOST"

# BigQuery NUMERIC(P, S) needs S <= 9 and P - S <= 29; BIGNUMERIC(P, S) takes S <= 38 and P - S <= 38.
NUMERIC_MAX_SCALE = 9
NUMERIC_MAX_INTEGER_DIGITS = 29


def bigquery_decimal_type(precision: int, scale: int) -> str:
    """The BigQuery type that holds every ``decimal(precision, scale)`` value exactly.

    dlt's own mapper writes ``NUMERIC(35,2)``, which BigQuery rejects (35 - 2 integer digits > 29);
    anything NUMERIC cannot hold goes to ``BIGNUMERIC(p,s)``, exact for p <= 38 (wider decimals arrive
    as text, see :mod:`oso_dagster.type_mapping`).
    """
    if scale <= NUMERIC_MAX_SCALE and precision - scale <= NUMERIC_MAX_INTEGER_DIGITS:
        return f"NUMERIC({precision},{scale})"
    return f"BIGNUMERIC({precision},{scale})"


class OsoBigQueryTypeMapper(BigQueryTypeMapper):
    """dlt's BigQuery type mapper with a decimal rule BigQuery accepts for every precision and scale."""

    def to_db_decimal_type(self, column: TColumnSchema) -> str:
        found = self.decimal_precision(column.get("precision"), column.get("scale"))
        assert found is not None  # dlt's default precision fills what the column leaves out
        precision, scale = found
        return bigquery_decimal_type(precision, scale)


def bigquery_destination(settings: Settings) -> Destination:
    """dlt's bigquery destination; Application Default Credentials unless a key file or token is configured."""
    kwargs: dict[str, object] = {"location": settings.bigquery_location, "type_mapper": OsoBigQueryTypeMapper}
    token = settings.bigquery_token
    if settings.bigquery_keyfile is not None:
        kwargs["credentials"] = settings.bigquery_keyfile.read_text(encoding="utf-8")
    elif token is not None:
        if not settings.bigquery_project:
            raise ConfigurationError(f"{TOKEN_ENV} needs OSO_BIGQUERY_PROJECT: a bare token names no project.")
        from google.oauth2.credentials import Credentials

        kwargs["credentials"] = Credentials(token=token)
        kwargs["project_id"] = settings.bigquery_project
    elif settings.bigquery_project:
        kwargs["project_id"] = settings.bigquery_project
    return dlt.destinations.bigquery(**kwargs)  # type: ignore[arg-type]


def bigquery_profile_output(settings: Settings, schema: str) -> dict[str, Any]:
    """The dbt-bigquery output used when ``OSO_DESTINATION=bigquery``.

    The token is referenced with ``env_var`` so profiles.yml never holds it.
    """
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
    elif settings.bigquery_token is not None:
        output["method"] = "oauth-secrets"
        output["token"] = "{{ env_var('" + TOKEN_ENV + "') }}"
    if settings.bigquery_api_endpoint:
        output["api_endpoint"] = settings.bigquery_api_endpoint
    return output
