"""Schedules, asset checks and retries that every installed source gets with no extra code."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster
import pytest
from conftest import run_sql
from dagster import AssetSelection, DagsterEventType
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets
from oso_dagster.errors import ConfigurationError
from oso_dagster.factories.sql import source_of
from oso_dagster.location.asset_checks import ROW_COUNT_CHECK, freshness_checks, row_count_checks
from oso_dagster.location.definitions import build_definitions
from oso_dagster.location.discovery import Discovery, SourcePackage
from oso_dagster.settings import Settings


def _package(*assets: dagster.AssetsDefinition) -> Discovery:
    sources = tuple(source_of(a) for a in assets)
    return Discovery(packages=(SourcePackage("oso-source-x", "1.0", "x = x.assets", assets, sources, None),))


def test_every_source_gets_a_stopped_schedule_and_checks() -> None:
    shop = sql_assets("shop", SecretReference(group_name="shop", key="db"),
                      [{"table": "orders", "incremental": incremental("updated_at")}, {"table": "users"}])
    quiet = sql_assets("quiet", SecretReference(group_name="quiet", key="db"), [{"table": "t"}], schedule=None)
    defs = build_definitions(Settings.from_env(), _package(shop, quiet))
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"sync_shop"}  # quiet opted out
    assert schedules["sync_shop"].cron_schedule == "0 3 * * *"
    assert schedules["sync_shop"].default_status == dagster.DefaultScheduleStatus.STOPPED
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ("shop/orders", "freshness_check") in check_keys
    assert ("shop/users", ROW_COUNT_CHECK) in check_keys
    assert ("shop/orders", ROW_COUNT_CHECK) not in check_keys  # incremental tables may keep deleted rows
    assert [s.name for s in defs.sensors] == ["oso_freshness_checks"]


def test_schedules_can_start_running_and_bad_cron_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSO_SCHEDULES", "running")
    shop = sql_assets("shop", SecretReference(group_name="shop", key="db"), [{"table": "t"}], schedule="@hourly")
    (schedule,) = build_definitions(Settings.from_env(), _package(shop)).schedules
    assert schedule.default_status == dagster.DefaultScheduleStatus.RUNNING
    with pytest.raises(ConfigurationError, match="not a cron expression"):
        sql_assets("bad", SecretReference(group_name="bad", key="db"), [{"table": "t"}], schedule="daily-ish")


def test_row_count_check_fails_on_unreplicated_rows_and_passes_after_sync(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(sqlite_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO users VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    monkeypatch.setenv("DAGSTER__LITE__DB", sqlite_url)
    assets = sql_assets("lite", SecretReference(group_name="lite", key="db"), [{"table": "users"}],
                        row_count_tolerance=0.0)
    counts = row_count_checks(source_of(assets), Settings.from_env())
    fresh = freshness_checks(source_of(assets))
    instance = dagster.DagsterInstance.ephemeral()

    def run(selection: AssetSelection) -> dict[str, bool]:
        result = dagster.materialize([assets, counts, *fresh], selection=selection, instance=instance)
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    assert run(AssetSelection.all()) == {ROW_COUNT_CHECK: True, "freshness_check": True}
    run_sql(sqlite_url, "INSERT INTO users VALUES (4, 'd')")
    assert run(AssetSelection.all_asset_checks()) == {ROW_COUNT_CHECK: False, "freshness_check": True}
    assert run(AssetSelection.all())[ROW_COUNT_CHECK] is True


class FlakyProxy:
    """A TCP forwarder to PostgreSQL that drops the first ``failures`` connections: a database 'blip'."""

    def __init__(self, target_port: int, failures: int) -> None:
        self.failures = failures
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.failures > 0:
                self.failures -= 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def flaky_pg(pg_url: str) -> Iterator[tuple[str, FlakyProxy]]:
    import sqlalchemy as sa

    url = sa.engine.make_url(pg_url)
    proxy = FlakyProxy(url.port or 5432, failures=1)
    yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.sock.close()


def _step_starts(result: dagster.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type in (DagsterEventType.STEP_START,
                                                               DagsterEventType.STEP_RESTARTED))


@pytest.mark.postgres
def test_transient_error_is_retried_and_succeeds(pg_url: str, flaky_pg: tuple[str, FlakyProxy],
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_sql(pg_url, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)")
    flaky_url, proxy = flaky_pg
    monkeypatch.setenv("DAGSTER__BLIP__DB", flaky_url)
    assets = sql_assets("blip", SecretReference(group_name="blip", key="db"), [{"table": "t"}],
                        retries=2, retry_delay_s=0.2, backend="pyarrow")
    result = dagster.materialize([assets], raise_on_error=False, instance=dagster.DagsterInstance.ephemeral())
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert proxy.failures == 0
    assert _step_starts(result) == 2  # failed once, retried once


@pytest.mark.postgres
def test_permanent_error_is_not_retried(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER__GONE__DB", pg_url)
    assets = sql_assets("gone", SecretReference(group_name="gone", key="db"), [{"table": "missing"}],
                        retries=3, retry_delay_s=0.2)
    result = dagster.materialize([assets], raise_on_error=False, instance=dagster.DagsterInstance.ephemeral())
    assert not result.success
    assert _step_starts(result) == 1
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "Table 'missing' does not exist" in failure.step_failure_data.error.message
