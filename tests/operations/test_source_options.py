"""`sql_assets` options whose effect nothing else checks: freshness_hours, pool, description, backend."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from decimal import Decimal
from pathlib import Path

import dagster
import duckdb
import pytest
import sqlalchemy as sa
from conftest import run_sql
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets
from oso_dagster.factories.sql import source_of
from oso_dagster.location.asset_checks import freshness_checks
from oso_dagster.location.definitions import build_definitions
from oso_dagster.location.discovery import Discovery, SourcePackage
from oso_dagster.settings import Settings

FRESHNESS = "freshness_check"


def _bounds_hours(assets: dagster.AssetsDefinition) -> dict[str, float]:
    """Asset -> the lower bound of its freshness check, in hours, as Dagster will evaluate it."""
    return {spec.asset_key.to_user_string(): spec.metadata["dagster/freshness_params"].data[
                "lower_bound_delta_seconds"] / 3600
            for check in freshness_checks(source_of(assets)) for spec in check.check_specs}


def test_freshness_hours_per_source_and_table_and_none_turns_it_off(sqlite_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ref = SecretReference(group_name="lite", key="db")
    tables = [{"table": "t"}, {"table": "u", "freshness_hours": None}, {"table": "v", "freshness_hours": 5}]
    assert _bounds_hours(sql_assets("lite", ref, tables, freshness_hours=2)) == {"lite/t": 2.0, "lite/v": 5.0}
    assert _bounds_hours(sql_assets("lite", ref, [{"table": "t"}])) == {"lite/t": 26.0}  # the documented default

    off = sql_assets("lite", ref, [{"table": "t"}], freshness_hours=None)
    assert freshness_checks(source_of(off)) == []
    package = SourcePackage("oso-source-lite", "1.0", "lite = lite.assets", (off,), (source_of(off),), None)
    defs = build_definitions(Settings.from_env(), Discovery(packages=(package,)))
    assert not [k for k in defs.resolve_asset_graph().asset_check_keys if k.name == FRESHNESS]
    assert list(defs.sensors) == []  # nothing for the freshness sensor to evaluate

    # A real run evaluates exactly the checks configured: t and v, not u.
    run_sql(sqlite_url, *(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY)" for t in "tuv"))
    monkeypatch.setenv("DAGSTER__LITE__DB", sqlite_url)
    assets = sql_assets("lite", ref, tables, freshness_hours=2)
    result = dagster.materialize([assets, *freshness_checks(source_of(assets))],
                                 instance=dagster.DagsterInstance.ephemeral())
    evaluated = {(e.asset_key.to_user_string(), e.check_name, e.passed) for e in result.get_asset_check_evaluations()}
    assert evaluated == {("lite/t", FRESHNESS, True), ("lite/v", FRESHNESS, True)}


def test_pool_and_description_reach_the_replication_step() -> None:
    ref = SecretReference(group_name="shop", key="db")
    chosen = sql_assets("shop", ref, [{"table": "t"}], pool="pg_primary", description="Nightly copy of the shop.")
    default = sql_assets("shop", ref, [{"table": "t"}])
    assert chosen.op.pool == "pg_primary" and default.op.pool == "oso_source_shop"
    assert chosen.op.description == "Nightly copy of the shop."
    assert default.op.description == "Replicate source `shop` with dlt."
    package = SourcePackage("oso-source-shop", "1.0", "shop = shop.assets", (chosen,), (source_of(chosen),), None)
    defs = build_definitions(Settings.from_env(), Discovery(packages=(package,)))
    served = defs.resolve_assets_def(dagster.AssetKey(["shop", "t"]))
    assert served.op.pool == "pg_primary" and served.op.description == "Nightly copy of the shop."


def test_sqlalchemy_backend_lands_exact_values(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        (1, "plain", Decimal("12345678.91"), 0.1, dt.datetime(2024, 2, 29, 23, 59, 58, 123456), 1),
        (2, "ürün \"q\" 'x'\n", Decimal("-0.01"), -1.5e300, dt.datetime(1970, 1, 1), 0),
        (3, None, None, None, None, None),
    ]
    run_sql(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT, amount DECIMAL(10, 2), ratio REAL, "
                        "at DATETIME, ok BOOLEAN)")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                         [(i, s, None if a is None else str(a), r, None if d is None else d.isoformat(" "), b)
                          for i, s, a, r, d, b in rows])
    monkeypatch.setenv("DAGSTER__LITE__DB", sqlite_url)
    assets = sql_assets("lite", SecretReference(group_name="lite", key="db"), [{"table": "t"}], backend="sqlalchemy")
    result = dagster.materialize([assets], instance=dagster.DagsterInstance.ephemeral())
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["backend"].value == "sqlalchemy"
    warehouse = Path(os.environ["OSO_HOME"]) / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        landed = conn.execute('SELECT id, txt, amount, ratio, "at", ok FROM lite.t ORDER BY id').fetchall()
    expected = [(i, s, a, r, d, None if b is None else bool(b)) for i, s, a, r, d, b in rows]
    assert [(i, s, a, r, None if d is None else d.replace(tzinfo=None), b) for i, s, a, r, d, b in landed] == expected


def _step_starts(result: dagster.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events
               if e.event_type in (dagster.DagsterEventType.STEP_START, dagster.DagsterEventType.STEP_RESTARTED))


def _run_once(url: str | None, tables: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch) -> str:
    """A run with retries on; returns its failure message after asserting the step ran exactly once."""
    if url is not None:
        monkeypatch.setenv("DAGSTER__PERM__DB", url)
    assets = sql_assets("perm", SecretReference(group_name="perm", key="db"), tables, retries=3, retry_delay_s=0.1)
    result = dagster.materialize([assets], raise_on_error=False, instance=dagster.DagsterInstance.ephemeral())
    assert not result.success
    assert _step_starts(result) == 1  # docs/operations.md: permanent errors fail at once, not retried
    failure = next(e for e in result.all_events if e.event_type == dagster.DagsterEventType.STEP_FAILURE)
    return failure.step_failure_data.error.message


def test_missing_secret_and_missing_column_are_not_retried(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "DAGSTER__PERM__DB" in _run_once(None, [{"table": "t"}], monkeypatch)
    run_sql(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, updated_at TIMESTAMP)")
    message = _run_once(sqlite_url, [{"table": "t", "incremental": incremental("changed_at")}], monkeypatch)
    assert "changed_at" in message


@pytest.mark.mariadb
def test_refused_login_is_not_retried(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sql(mysql_url, "CREATE TABLE t (id int PRIMARY KEY)")
    user = "oso_perm_test"
    run_sql(mysql_url, f"DROP USER IF EXISTS '{user}'@'%'", f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-one'")
    try:
        wrong = sa.engine.make_url(mysql_url).set(username=user, password="wrong-one")
        message = _run_once(wrong.render_as_string(hide_password=False), [{"table": "t"}], monkeypatch)
    finally:
        run_sql(mysql_url, f"DROP USER IF EXISTS '{user}'@'%'")
    assert "refused" in message and "wrong-one" not in message


def test_freshness_sensor_requests_the_checks_between_syncs() -> None:
    """docs/operations.md: the sensor `oso_freshness_checks` evaluates freshness between syncs."""
    assets = sql_assets("lite", SecretReference(group_name="lite", key="db"),
                        [{"table": "t"}, {"table": "u", "freshness_hours": None}])
    package = SourcePackage("oso-source-lite", "1.0", "lite = lite.assets", (assets,), (source_of(assets),), None)
    defs = build_definitions(Settings.from_env(), Discovery(packages=(package,)))
    (sensor,) = defs.sensors
    context = dagster.build_sensor_context(instance=dagster.DagsterInstance.ephemeral(), definitions=defs)
    request = sensor(context)  # never evaluated yet: every configured freshness check is due
    assert [key.asset_key.to_user_string() for key in request.asset_check_keys] == ["lite/t"]
    assert {key.name for key in request.asset_check_keys} == {FRESHNESS}
