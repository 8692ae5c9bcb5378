"""oso-dagster: replicate SQL databases into the warehouse with dlt, stage them with dbt, serve both in Dagster."""

from oso_dagster.factories.sql import sql_assets
from oso_dagster.utils.secrets import SecretReference

__all__ = ["SecretReference", "sql_assets"]
__version__ = "0.1.0"
