"""The warehouse side: dlt's destination and pipeline per source (DuckDB or BigQuery), the DuckDB write lock,
and BigQuery's dlt destination and dbt profile."""
