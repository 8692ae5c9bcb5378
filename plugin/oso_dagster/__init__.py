"""oso-dagster: replicate SQL databases into the warehouse with dlt, stage them with dbt, serve both in Dagster.

The public names are loaded on first use, so importing a light submodule (settings, entry points) does
not import Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SecretReference", "sql_assets"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from oso_dagster.factories.sql import sql_assets
    from oso_dagster.utils.secrets import SecretReference


def __getattr__(name: str) -> Any:
    if name == "sql_assets":
        from oso_dagster.factories.sql import sql_assets

        return sql_assets
    if name == "SecretReference":
        from oso_dagster.utils.secrets import SecretReference

        return SecretReference
    raise AttributeError(f"module 'oso_dagster' has no attribute {name!r}")
