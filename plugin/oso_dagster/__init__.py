"""oso-dagster: replicate SQL databases into the warehouse with dlt, stage them with dbt, serve both in Dagster.

The public names are loaded on first use, so importing a light submodule (settings, entry points) does
not import Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SecretReference", "SqlSourceComponent", "sql_assets"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from oso_dagster.factories.sql import sql_assets
    from oso_dagster.location.component import SqlSourceComponent
    from oso_dagster.utils.secrets import SecretReference


def __getattr__(name: str) -> Any:
    if name == "sql_assets":
        from oso_dagster.factories.sql import sql_assets

        return sql_assets
    if name == "SecretReference":
        from oso_dagster.utils.secrets import SecretReference

        return SecretReference
    if name == "SqlSourceComponent":  # what `dg` finds through the dagster_dg_cli.registry_modules entry point
        from oso_dagster.location.component import SqlSourceComponent

        return SqlSourceComponent
    raise AttributeError(f"module 'oso_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too: ``dg`` lists a registry module's components with ``dir()``."""
    return sorted({*globals(), *__all__})
