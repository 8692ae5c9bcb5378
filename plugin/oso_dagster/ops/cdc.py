"""``oso-sources drop-cdc``: remove what change data capture keeps for a source, on the server and in the warehouse.

On PostgreSQL that is the replication slot and the publication ``oso_<source>`` (a slot left behind pins WAL
on the server for ever); on every database the source's CDC state in the warehouse (``<dataset>._oso_cdc_state``),
so the next sync starts from a new snapshot of every CDC table. MySQL/MariaDB keep nothing per source on the
server: the binlog position lives in the warehouse state only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from oso_dagster.database import create_source_engine
from oso_dagster.errors import OsoDagsterError, SourceDatabaseError
from oso_dagster.factories.config import SqlSource
from oso_dagster.run.cdc import state
from oso_dagster.settings import Settings
from oso_dagster.utils.redact import scrub
from oso_dagster.utils.secrets import resolver_from_settings
from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline, warehouse_write_lock


@dataclass
class DroppedCdc:
    """What ``drop_cdc`` removed."""

    dialect: str
    on_server: list[str] = field(default_factory=list)  # e.g. "replication slot oso_shop"
    state_table: str | None = None  # the warehouse state table dropped, None: there was none


def drop_cdc(source: SqlSource, settings: Settings | None = None) -> DroppedCdc:
    """Drop the source's slot and publication (PostgreSQL), then its warehouse CDC state.

    The server side goes first: if it fails, the warehouse still holds the position and the next sync resumes
    from it as before.
    """
    from oso_dagster.run.cdc import postgres

    settings = settings or Settings.from_env()
    url = resolver_from_settings(settings).resolve(source.secret).reveal()
    try:
        dialect = make_url(url).get_backend_name()
    except Exception:
        dialect = "unknown"
    result = DroppedCdc(dialect=dialect)
    if dialect == "postgresql":
        engine = create_source_engine(url)
        try:
            result.on_server = postgres.drop(engine, source.name)
        except OsoDagsterError:
            raise
        except Exception as exc:
            detail = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", [url])
            raise SourceDatabaseError(
                f"Source {source.name!r}: could not drop its replication slot and publication ({detail}). "
                "Nothing was changed in the warehouse; fix the connection or the role's privileges and rerun "
                f"`oso-sources drop-cdc {source.name}`."
            ) from None
        finally:
            engine.dispose()
    pipeline = make_pipeline(settings, source.name)
    with warehouse_write_lock(settings), dlt_environment(settings):
        if state.forget(pipeline):
            result.state_table = f"{settings.dataset_name(source.name)}.{state.STATE_TABLE}"
    return result
