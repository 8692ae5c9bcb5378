"""The dlt pipeline and destination for a source, chosen by ``OSO_DESTINATION``; and the DuckDB write lock."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.impl.duckdb.factory import DuckDbTypeMapper
from filelock import FileLock

from oso_dagster.settings import Settings


def pipeline_name(source_name: str) -> str:
    """One dlt pipeline per source, so two sources never share state."""
    return f"oso__{source_name}"


def make_destination(settings: Settings) -> Destination:
    if settings.destination == "bigquery":
        from oso_dagster.warehouse.bigquery import bigquery_destination

        return bigquery_destination(settings)
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    # insert-from-staging: a full refresh loads into a staging schema, then swaps rows in one
    # transaction, so readers never see an empty table mid-load and a failed load leaves the old rows.
    return dlt.destinations.duckdb(
        credentials=str(settings.duckdb_path), replace_strategy="insert-from-staging",
        type_mapper=OsoDuckDbTypeMapper,
    )


# A column hint naming the DuckDB type a column lands as, where dlt has no data type for it (INTERVAL), or
# where dlt's own type would change the values on the way (JSON read as text by a Python-object backend,
# whose normalizer would parse it and lose a JSON ``null``). The values travel as text; DuckDB casts them.
DUCKDB_TYPE_HINT = "x-oso-duckdb-type"


class OsoDuckDbTypeMapper(DuckDbTypeMapper):
    """dlt's DuckDB type mapper, honouring :data:`DUCKDB_TYPE_HINT`."""

    def to_destination_type(self, column: TColumnSchema, table: Any) -> str:
        override = column.get(DUCKDB_TYPE_HINT)
        return str(override) if override else super().to_destination_type(column, table)


def make_pipeline(settings: Settings, source_name: str) -> dlt.Pipeline:
    settings.pipelines_dir.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=pipeline_name(source_name),
        pipelines_dir=str(settings.pipelines_dir),
        destination=make_destination(settings),
        dataset_name=settings.dataset_name(source_name),
        progress="log",
    )


@contextlib.contextmanager
def warehouse_write_lock(settings: Settings) -> Iterator[None]:
    """Serialise writers of the local DuckDB file (dlt steps of every source, and dbt).

    DuckDB allows one writing process per file; Dagster runs steps in parallel processes.
    BigQuery needs no lock.
    """
    if settings.destination != "duckdb":
        yield
        return
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(settings.duckdb_path) + ".lock"):
        yield


# Load files are written once, read once by the local loader and then deleted: compressing them costs
# about a third of the extract step (measured in bench/replicate.py) and saves nothing worth having.
# BigQuery uploads the files, so there compression pays for itself.
#
# DuckDB's own default memory limit is 80% of RAM: a merge or staging swap of a 20M-row table took the
# replicating process to 2.9 GB. Capped, DuckDB spills to ``<warehouse>.duckdb.tmp`` instead, and the
# process stays under 1 GB (tests/reliability/test_large_table.py). Loaded files are deleted at once so
# temporary disk holds one run's load package at most. Each can be overridden by setting it in the environment.
_LOCAL_WRITER_SETTINGS = {
    "DATA_WRITER__COMPRESSION": "none",
    "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "400MB"}',
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


@contextlib.contextmanager
def dlt_environment(settings: Settings, extract_workers: int | None = None) -> Iterator[None]:
    """The dlt settings of one warehouse use, set in the environment (where dlt reads them) and restored after.

    The one place the plugin writes ``os.environ``: the local writer settings above, unless the user set them;
    how many resources dlt extracts at once (``EXTRACT__WORKERS``); and the BigQuery endpoint of a stand-in,
    which google-cloud-bigquery reads only from ``BIGQUERY_EMULATOR_HOST``.
    """
    chosen = dict(_LOCAL_WRITER_SETTINGS) if settings.destination == "duckdb" else {}
    chosen = {name: value for name, value in chosen.items() if name not in os.environ}
    if extract_workers is not None:
        chosen["EXTRACT__WORKERS"] = str(extract_workers)
    if settings.destination == "bigquery" and settings.bigquery_api_endpoint:
        from oso_dagster.warehouse.bigquery import CLIENT_ENDPOINT_ENV

        chosen[CLIENT_ENDPOINT_ENV] = settings.bigquery_api_endpoint
    previous = {name: os.environ.get(name) for name in chosen}
    os.environ.update(chosen)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
