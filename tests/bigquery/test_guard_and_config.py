"""The guard in front of the emulator makes failing SQL raise; the BigQuery settings shape dlt and dbt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.api_core import exceptions
from oso_dagster.errors import ConfigurationError
from oso_dagster.location.dbt_project import write_project
from oso_dagster.settings import Settings
from oso_dagster.warehouse.bigquery import (
    OsoBigQueryTypeMapper,
    bigquery_decimal_type,
    bigquery_destination,
    bigquery_profile_output,
)
from oso_dagster.warehouse.destinations import make_pipeline

from bigquery.conftest import Target
from bigquery.emulator import query_error

BAD_SQL = "SELECT no_such_column FROM no_such_dataset.no_such_table"


@pytest.mark.bigquery
def test_failing_sql_raises_only_through_the_guard(bq_target: Target) -> None:
    if not bq_target.is_emulator:
        pytest.skip("real BigQuery raises on its own")
    assert bq_target.raw_endpoint is not None and bq_target.guard is not None
    # The emulator alone answers HTTP 200 with an `errors` list: the client sees an empty, successful result.
    assert list(bq_target.client(bq_target.raw_endpoint).query_and_wait(BAD_SQL)) == []
    before = bq_target.guard.translated
    with pytest.raises(exceptions.NotFound, match="no_such_dataset"):
        bq_target.client().query_and_wait(BAD_SQL)
    assert bq_target.guard.translated == before + 1


def test_query_error_translation() -> None:
    body = b'{"kind": "bigquery#queryResponse", "errors": [{"reason": "invalidQuery", "message": "Syntax error"}]}'
    status, payload = query_error(body)  # type: ignore[misc]
    assert status == 400 and b"Syntax error" in payload
    assert query_error(b'{"kind": "bigquery#queryResponse", "rows": []}') is None
    assert query_error(b"not json") is None


@pytest.mark.parametrize(
    ("precision", "scale", "expected"),
    [
        (12, 2, "NUMERIC(12,2)"),
        (38, 9, "NUMERIC(38,9)"),
        (29, 0, "NUMERIC(29,0)"),
        (30, 0, "BIGNUMERIC(30,0)"),  # 30 integer digits
        (35, 2, "BIGNUMERIC(35,2)"),  # dlt's own mapper says NUMERIC(35,2), which BigQuery rejects
        (18, 10, "BIGNUMERIC(18,10)"),  # scale > 9
        (38, 38, "BIGNUMERIC(38,38)"),
    ],
)
def test_decimal_types_bigquery_accepts(precision: int, scale: int, expected: str) -> None:
    assert bigquery_decimal_type(precision, scale) == expected


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"OSO_HOME": str(tmp_path), "OSO_DESTINATION": "bigquery", **env})


def test_default_profile_uses_adc_and_no_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = bigquery_profile_output(_settings(tmp_path, OSO_BIGQUERY_PROJECT="p"), "staging")
    assert output["method"] == "oauth" and output["project"] == "p"
    assert "api_endpoint" not in output and "token" not in output
    destination = bigquery_destination(_settings(tmp_path, OSO_BIGQUERY_PROJECT="p"))
    assert destination.capabilities().type_mapper is OsoBigQueryTypeMapper
    assert destination.destination_name == "bigquery"


def test_token_stays_out_of_the_profile(tmp_path: Path) -> None:
    settings = _settings(tmp_path, OSO_BIGQUERY_PROJECT="p", OSO_BIGQUERY_TOKEN="s3cret-token",
                         OSO_BIGQUERY_API_ENDPOINT="http://127.0.0.1:1/")
    assert "s3cret-token" not in repr(settings)
    output = bigquery_profile_output(settings, "staging")
    assert output["method"] == "oauth-secrets" and output["api_endpoint"] == "http://127.0.0.1:1"
    assert "s3cret-token" not in repr(output) and "env_var('OSO_BIGQUERY_TOKEN')" in output["token"]


def test_token_without_project_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="OSO_BIGQUERY_PROJECT") as info:
        bigquery_destination(_settings(tmp_path, OSO_BIGQUERY_TOKEN="s3cret-token"))
    assert "s3cret-token" not in str(info.value)


def test_location_keyfile_and_prefix_from_the_environment_reach_dlt_and_dbt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OSO_BIGQUERY_LOCATION, OSO_BIGQUERY_KEYFILE and OSO_DATASET_PREFIX as a run and the dbt project read them."""
    keyfile = tmp_path / "bq-writer.json"
    private_key = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"
    keyfile.write_text(json.dumps({
        "type": "service_account", "project_id": "key-project", "private_key_id": "k1", "private_key": private_key,
        "client_email": "writer@key-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    for name, value in {"OSO_DESTINATION": "bigquery", "OSO_BIGQUERY_LOCATION": "europe-west3",
                        "OSO_BIGQUERY_KEYFILE": str(keyfile), "OSO_DATASET_PREFIX": "prod_"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()

    pipeline = make_pipeline(settings, "mydb")
    assert pipeline.dataset_name == "prod_mydb"
    config = pipeline.destination.configuration(None, accept_partial=True)
    assert config.location == "europe-west3"
    assert config.credentials.project_id == "key-project"
    assert config.credentials.client_email == "writer@key-project.iam.gserviceaccount.com"

    write_project(tmp_path / "dbt", settings, [])
    profiles_text = (tmp_path / "dbt" / "profiles.yml").read_text()
    (output,) = yaml.safe_load(profiles_text)["oso"]["outputs"].values()
    assert output["location"] == "europe-west3"
    assert output["method"] == "service-account" and output["keyfile"] == str(keyfile)
    assert output["schema"] == "prod_staging"
    assert "not-a-real-key" not in profiles_text  # the profile points at the file, it does not copy the key
