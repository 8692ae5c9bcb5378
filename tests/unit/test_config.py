"""``sql_assets`` arguments are checked at definitions load, with errors that name the entry and the fix."""

from __future__ import annotations

import pytest
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets
from oso_dagster.errors import ConfigurationError
from oso_dagster.factories.config import SourceOptions, parse_tables

REF = SecretReference(group_name="db", key="url")


def _parse(tables: object, **options: object) -> list:
    return parse_tables("db", tables, SourceOptions.parse("db", options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([], "non-empty list"),
        ("users", "non-empty list"),
        (["users"], "must be a dict"),
        ([{"name": "users"}], "unknown key"),
        ([{"table": ""}], "needs 'table'"),
        ([{"table": "t", "incremental": "updated_at"}], "dlt.sources.incremental"),
        ([{"table": "t", "incremental": incremental("a.b")}], "one column name"),
        ([{"table": "t", "primary_key": []}], "primary_key must be"),
        ([{"table": "t", "write_disposition": "upsert"}], "write_disposition must be one of"),
        ([{"table": "t", "backend": "turbo"}], "backend 'turbo' is unknown"),
        ([{"table": "t", "chunk_size": -5}], "chunk_size"),
        ([{"table": "t", "chunk_size": "big"}], "chunk_size"),
        ([{"table": "Users"}, {"table": "users"}], "both land as 'users'"),
    ],
)
def test_bad_tables_are_named(tables: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _parse(tables)


def test_bad_source_options() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        _parse([{"table": "t"}], turbo=True)
    with pytest.raises(ConfigurationError, match="concurrency"):
        _parse([{"table": "t"}], concurrency=0)


def test_defaults_and_overrides() -> None:
    events, users = _parse(
        [{"table": "Events", "incremental": incremental("time"), "primary_key": "id"}, {"table": "users"}],
        chunk_size=5000,
    )
    assert events.write_disposition == "merge"
    assert events.primary_key == ("id",)
    assert events.landing_name == "events"
    assert events.chunk_size == 5000
    assert users.write_disposition == "replace"
    assert users.backend == "auto"


def test_sql_assets_rejects_a_plain_string_secret() -> None:
    with pytest.raises(ConfigurationError, match="SecretReference"):
        sql_assets("db", "postgresql://u:p@h/db", [{"table": "t"}])  # type: ignore[arg-type]


def test_sql_assets_rejects_bad_source_name() -> None:
    with pytest.raises(ConfigurationError, match="cannot name a source"):
        sql_assets("Bad-Name", REF, [{"table": "t"}])


def test_snapshot_options_default_override_and_errors() -> None:
    options = SourceOptions.parse("s", {"snapshot_parallelism": 2})
    big, small = parse_tables("s", [{"table": "big", "snapshot_chunk_rows": 5000}, {"table": "small"}], options)
    assert (big.snapshot_chunk_rows, big.snapshot_parallelism) == (5000, 2)
    assert (small.snapshot_chunk_rows, small.snapshot_parallelism) == (None, 2)  # off unless asked for
    with pytest.raises(ConfigurationError, match="snapshot_chunk_rows must be a whole number >= 1000"):
        parse_tables("s", [{"table": "t", "snapshot_chunk_rows": 10}], options)
    with pytest.raises(ConfigurationError, match="snapshot_parallelism must be a whole number from 1 to 16"):
        SourceOptions.parse("s", {"snapshot_parallelism": 0})
    with pytest.raises(ConfigurationError, match="snapshot_chunk_rows"):
        parse_tables("s", [{"table": "t", "snapshot_chunk_rows": 1.5e6}], options)


def test_cdc_is_a_source_option_with_a_per_table_opt_out() -> None:
    on = SourceOptions.parse("s", {"cdc": True})
    events, audit = parse_tables("s", [{"table": "events", "incremental": incremental("t")},
                                       {"table": "audit", "cdc": False}], on)
    assert (events.cdc, audit.cdc) == (True, False)  # the seed shape works unchanged with cdc=True
    (plain,) = parse_tables("s", [{"table": "events"}], SourceOptions.parse("s", {}))
    assert plain.cdc is False
    with pytest.raises(ConfigurationError, match="pass cdc=True to sql_assets"):
        parse_tables("s", [{"table": "t", "cdc": True}], SourceOptions.parse("s", {}))
    with pytest.raises(ConfigurationError, match="sees deletes in the change log"):
        parse_tables("s", [{"table": "t", "incremental": incremental("t"), "reconcile_deletes": True}], on)
    with pytest.raises(ConfigurationError, match="'append' does not apply to a CDC table"):
        parse_tables("s", [{"table": "t", "write_disposition": "append"}], on)
    with pytest.raises(ConfigurationError, match="cdc must be True or False"):
        SourceOptions.parse("s", {"cdc": "yes"})
    with pytest.raises(ConfigurationError, match="cdc_max_retained_wal_mb must be a positive number"):
        SourceOptions.parse("s", {"cdc": True, "cdc_max_retained_wal_mb": 0})


def test_a_cdc_source_declares_its_retention_check_on_its_first_cdc_table() -> None:
    assets = sql_assets("db", REF, [{"table": "audit", "cdc": False}, {"table": "orders"}], cdc=True)
    assert [(spec.asset_key.path, spec.name) for spec in assets.check_specs] == [
        (["db", "orders"], "cdc_log_retention")]
    assert not list(sql_assets("db", REF, [{"table": "orders"}]).check_specs)
