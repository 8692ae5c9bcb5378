"""Fixtures for the BigQuery tests: the local emulator behind its guard (default), or a real project.

By default a session fixture installs (once, cached) and starts ``bqemulator`` and stops it after the session;
when it cannot, the tests skip, or fail under ``OSO_TEST_REQUIRE_ALL``/``CI`` (see tests/conftest.py).
With ``OSO_TEST_BIGQUERY_PROJECT`` set, the same tests run against that real project with Application Default
Credentials instead (datasets get a unique prefix and are deleted afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import missing_tool

from bigquery.emulator import (
    BQEMULATOR_VERSION,
    PROJECT,
    EmulatorUnavailable,
    GuardProxy,
    ensure_venv,
    running_emulator,
)

EMULATOR_TOKEN = "emulator-token"  # the emulator accepts any bearer token


@dataclass(frozen=True)
class Target:
    """Where the BigQuery tests write: the guarded emulator, or a real project."""

    project: str
    endpoint: str | None  # the guard proxy's URL; None for real BigQuery
    raw_endpoint: str | None  # the emulator itself, bypassing the guard
    guard: GuardProxy | None

    @property
    def is_emulator(self) -> bool:
        return self.endpoint is not None

    def client(self, endpoint: str | None = None) -> Any:
        from google.cloud import bigquery

        if not self.is_emulator:
            return bigquery.Client(project=self.project)
        from google.oauth2.credentials import Credentials

        return bigquery.Client(
            project=self.project, credentials=Credentials(token=EMULATOR_TOKEN),
            client_options={"api_endpoint": endpoint or self.endpoint},
        )


@pytest.fixture(scope="session")
def bq_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    real = os.environ.get("OSO_TEST_BIGQUERY_PROJECT")
    if real:
        yield Target(project=real, endpoint=None, raw_endpoint=None, guard=None)
        return
    try:
        root = ensure_venv()
    except EmulatorUnavailable as exc:
        missing_tool(f"the BigQuery emulator (bqemulator {BQEMULATOR_VERSION}) could not be installed: {exc}")
    log = tmp_path_factory.mktemp("bqemulator") / "emulator.log"
    try:
        with running_emulator(root, log) as raw, GuardProxy(raw) as guard:
            yield Target(project=PROJECT, endpoint=guard.url, raw_endpoint=raw, guard=guard)
    except EmulatorUnavailable as exc:
        missing_tool(f"the BigQuery emulator (bqemulator {BQEMULATOR_VERSION}) could not start: {exc}")


@dataclass(frozen=True)
class BigQueryRun:
    """One test's view of the target: its dataset prefix, the environment it set, and a client."""

    target: Target
    prefix: str
    env: dict[str, str]
    client: Any

    def dataset(self, name: str) -> str:
        return f"{self.target.project}.{self.prefix}{name}"

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return [dict(row.items()) for row in self.client.query(sql).result()]


@pytest.fixture
def bq(bq_target: Target, monkeypatch: pytest.MonkeyPatch, oso_env: Path) -> Iterator[BigQueryRun]:
    """``OSO_DESTINATION=bigquery`` pointed at the target, with a dataset prefix unique to this test."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    env = {
        "OSO_DESTINATION": "bigquery",
        "OSO_BIGQUERY_PROJECT": bq_target.project,
        "OSO_DATASET_PREFIX": prefix,
    }
    if bq_target.is_emulator:
        assert bq_target.endpoint is not None
        env["OSO_BIGQUERY_API_ENDPOINT"] = bq_target.endpoint
        env["OSO_BIGQUERY_TOKEN"] = EMULATOR_TOKEN
        # the emulator reads uncompressed load files only
        env["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    client = bq_target.client()
    yield BigQueryRun(target=bq_target, prefix=prefix, env=env, client=client)
    os.environ.pop("BIGQUERY_EMULATOR_HOST", None)  # set by oso_dagster.warehouse.bigquery for dlt's client
    for dataset in client.list_datasets():
        if dataset.dataset_id.startswith(prefix):
            client.delete_dataset(dataset.reference, delete_contents=True, not_found_ok=True)
