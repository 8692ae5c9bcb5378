"""``reconcile_deletes``: remove warehouse rows of an incremental table whose key is gone from the source."""

from __future__ import annotations

import dlt
import sqlalchemy as sa
from dlt.sources.sql_database import sql_table
from sqlalchemy.engine import Engine

from oso_dagster import type_mapping
from oso_dagster.factories.config import TableConfig
from oso_dagster.run.table_reader import SCHEMA_CONTRACT, TablePlan


def _keys_table(config: TableConfig) -> str:
    return f"_oso_keys__{config.landing_name}"


def reconcile_deletes(pipeline: dlt.Pipeline, engine: Engine, plan: TablePlan) -> int:
    """Remove warehouse rows of an incremental table whose primary key no longer exists in the source.

    Runs after the table's load, so the key snapshot is newer than every loaded row: a row inserted
    meanwhile is in the snapshot (kept), a row deleted meanwhile is not (removed). The keys travel through
    dlt into a key-only table in the same dataset (streamed in ``chunk_size`` batches, memory stays
    bounded), then one anti-join ``DELETE`` runs in the warehouse with identifiers quoted by dlt.
    """
    config = plan.config
    key = list(plan.primary_key or ())
    casts = {c: plan.casts[c] for c in key if c in plan.casts}

    def keys_only(query: sa.sql.Select, table: sa.Table) -> sa.sql.Select:
        return query.with_only_columns(
            *[sa.cast(table.c[c], casts[c]).label(c) if c in casts else table.c[c] for c in key]
        )

    dialect = engine.dialect.name
    keys = sql_table(
        credentials=engine,
        table=config.table,
        schema=config.schema,
        metadata=plan.table.metadata,
        chunk_size=config.chunk_size,
        backend="pyarrow" if plan.backend == "connectorx" else plan.backend,  # type: ignore[arg-type]
        reflection_level="full",
        included_columns=key,
        type_adapter_callback=lambda sql_type: type_mapping.dlt_column_type(sql_type, dialect),
        query_adapter_callback=keys_only,
        write_disposition="replace",
    ).with_name(_keys_table(config))
    pipeline.run(keys, schema_contract=SCHEMA_CONTRACT)
    schema = pipeline.default_schema
    if config.landing_name not in schema.tables:
        return 0
    normalize = schema.naming.normalize_identifier
    with pipeline.sql_client() as client:
        target = client.make_qualified_table_name(config.landing_name)
        snapshot = client.make_qualified_table_name(_keys_table(config))
        match = " AND ".join(
            f"k.{client.escape_column_name(normalize(c))} = t.{client.escape_column_name(normalize(c))}" for c in key
        )
        before = (client.execute_sql(f"SELECT count(*) FROM {target}") or [[0]])[0][0]
        client.execute_sql(f"DELETE FROM {target} AS t WHERE NOT EXISTS (SELECT 1 FROM {snapshot} AS k WHERE {match})")
        after = (client.execute_sql(f"SELECT count(*) FROM {target}") or [[0]])[0][0]
        client.execute_sql(f"DELETE FROM {snapshot} WHERE true")  # BigQuery needs a WHERE
    return int(before) - int(after)
