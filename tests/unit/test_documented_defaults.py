"""The defaults README, docs/configuration.md, docs/guide.md and docs/operations.md state are the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import Backoff, DefaultSensorStatus, Jitter
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets
from oso_dagster.factories.sql import source_of
from oso_dagster.location.asset_checks import freshness_checks, freshness_sensor
from oso_dagster.settings import Settings


def test_settings_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / ".oso"                                 # OSO_HOME: ./.oso
    assert settings.destination == "duckdb"                                   # OSO_DESTINATION
    assert settings.duckdb_path == tmp_path / ".oso" / "warehouse.duckdb"     # OSO_DUCKDB_PATH
    assert settings.secrets_backend == "env"                                  # OSO_SECRETS
    assert settings.secrets_file == tmp_path / ".oso" / "secrets.toml"        # OSO_SECRETS_FILE
    assert settings.gcp_secrets_prefix == "dagster"                           # OSO_GCP_SECRETS_PREFIX
    assert settings.bigquery_location == "US"                                 # OSO_BIGQUERY_LOCATION
    assert settings.bigquery_keyfile is None and settings.bigquery_project is None
    assert settings.dataset_prefix == "" and settings.dataset_name("mydb") == "mydb"
    assert settings.schedules_running is False                                # OSO_SCHEDULES: stopped
    assert settings.pipelines_dir == tmp_path / ".oso" / "dlt_pipelines"
    assert settings.dbt_dir == tmp_path / ".oso" / "dbt"


def test_sql_assets_defaults() -> None:
    assets = sql_assets("mydb", SecretReference(group_name="mydb", key="db_connection_string"),
                        [{"table": "events", "incremental": incremental("time")}, {"table": "users"}])
    source = source_of(assets)
    options = source.options
    assert (options.concurrency, options.backend, options.chunk_size) == (1, "auto", 100_000)
    assert (options.schedule, options.freshness_hours, options.row_count_tolerance) == ("0 3 * * *", 26, 0.01)
    events, users = source.tables
    assert (events.write_disposition, users.write_disposition) == ("merge", "replace")
    assert events.chunk_size == users.chunk_size == 100_000
    policy = assets.op.retry_policy  # 3 retries from 30 s, exponential, with jitter
    assert (policy.max_retries, policy.delay, policy.backoff, policy.jitter) == (3, 30, Backoff.EXPONENTIAL,
                                                                                  Jitter.PLUS_MINUS)
    assert [spec.key.to_user_string() for spec in assets.specs] == ["mydb/events", "mydb/users"]
    assert {spec.group_name for spec in assets.specs} == {"mydb"}
    sensor = freshness_sensor(freshness_checks(source))
    assert sensor.name == "oso_freshness_checks" and sensor.default_status == DefaultSensorStatus.STOPPED
