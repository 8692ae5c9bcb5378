"""Per-table health read from Dagster's own run storage: last successful sync, rows loaded, failing checks.

Only available when ``DAGSTER_HOME`` points at an instance; without it Dagster keeps no history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import AssetCheckKey

from oso_dagster.factories.config import SqlSource
from oso_dagster.factories.translator import asset_key
from oso_dagster.location.asset_checks import ROW_COUNT_CHECK
from oso_dagster.settings import Settings

FRESHNESS_CHECK = "freshness_check"


@dataclass(frozen=True)
class TableHealth:
    last_sync: datetime | None
    rows_loaded: int | None
    failing_checks: tuple[str, ...]


def instance_available(settings: Settings) -> bool:
    """Whether a Dagster instance is configured (``DAGSTER_HOME``) to read health from."""
    return settings.dagster_home is not None


def source_health(source: SqlSource, settings: Settings) -> dict[str, TableHealth]:
    """``landing table -> TableHealth`` for one source, from the Dagster instance at ``DAGSTER_HOME``."""
    from dagster import DagsterInstance

    out: dict[str, TableHealth] = {}
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for table in source.tables:
            key = asset_key(source.name, table)
            event = instance.get_latest_materialization_event(key)
            last_sync = rows = None
            if event is not None:
                last_sync = datetime.fromtimestamp(event.timestamp, tz=UTC)
                metadata = event.asset_materialization.metadata if event.asset_materialization else {}
                value = metadata.get("rows_loaded")
                rows = int(value.value) if value is not None and isinstance(value.value, int) else None
            failing = []
            for check in (FRESHNESS_CHECK, ROW_COUNT_CHECK):
                record = instance.get_latest_asset_check_evaluation_record(AssetCheckKey(key, check))
                evaluation = record.evaluation if record is not None else None
                if evaluation is not None and not evaluation.passed:
                    failing.append(check)
            out[table.landing_name] = TableHealth(last_sync, rows, tuple(failing))
    return out
