"""SqlSourceComponent: a defs.yaml builds what sql_assets builds, errors name the field, nothing connects at load."""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points

import oso_dagster
import pytest
from dagster import AssetKey
from dagster.components.testing.utils import component_defs
from dlt.sources import incremental
from oso_dagster.errors import ConfigurationError
from oso_dagster.factories.sql import source_of, sql_assets
from oso_dagster.location.component import SqlSourceComponent
from oso_dagster.utils.secrets import SecretReference

YAML = """
name: shop
secret:
  group_name: shop_db
tables:
  - table: orders
    incremental: updated_at
    reconcile_deletes: true
  - table: customers
    primary_key: [region, id]
  - table: events
    incremental:
      cursor_path: happened_at
      initial_value: "2024-01-01"
options:
  schema: sales
  schedule: "@hourly"
  freshness_hours: 2
"""


def _defs(yaml: str):  # type: ignore[no-untyped-def]
    return component_defs(component=SqlSourceComponent.resolve_from_yaml(textwrap.dedent(yaml)))


def test_yaml_builds_what_sql_assets_builds() -> None:
    defs = _defs(YAML)
    (assets_def,) = list(defs.assets or [])
    expected = sql_assets(
        "shop",
        SecretReference(group_name="shop_db", key="db_connection_string"),
        [{"table": "orders", "incremental": incremental("updated_at"), "reconcile_deletes": True},
         {"table": "customers", "primary_key": ["region", "id"]},
         {"table": "events", "incremental": incremental("happened_at", initial_value="2024-01-01")}],
        schema="sales", schedule="@hourly", freshness_hours=2,
    )
    assert set(assets_def.keys) == set(expected.keys) == {
        AssetKey(["shop", t]) for t in ("orders", "customers", "events")}
    got, want = source_of(assets_def), source_of(expected)
    assert got is not None and want is not None
    assert got.secret == want.secret and got.options == want.options
    for mine, theirs in zip(got.tables, want.tables, strict=True):
        assert (mine.table, mine.schema, mine.cursor_column, mine.primary_key, mine.write_disposition,
                mine.reconcile_deletes, mine.freshness_hours) == (
            theirs.table, theirs.schema, theirs.cursor_column, theirs.primary_key, theirs.write_disposition,
            theirs.reconcile_deletes, theirs.freshness_hours)
    assert got.tables[2].incremental is not None and got.tables[2].incremental.initial_value == "2024-01-01"
    for key in assets_def.keys:
        assert set(assets_def.specs_by_key[key].metadata) == set(expected.specs_by_key[key].metadata)
        assert assets_def.specs_by_key[key].description == expected.specs_by_key[key].description
        assert assets_def.specs_by_key[key].group_name == "shop"
    assert [s.name for s in defs.schedules or []] == ["sync_shop"]
    assert {c.key.name for check in defs.asset_checks or [] for c in check.check_specs} >= {"freshness_check"}


def test_the_component_resolves_no_secret_and_touches_no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER__SHOP_DB__DB_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("OSO_SECRETS", "env")
    # the table does not exist anywhere and the secret is unset: loading must not notice either
    assert _defs(YAML).assets


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("name: shop\nsecret: {group_name: shop}\ntables: []\n", "tables must be a non-empty list"),
        ("name: 'bad name'\nsecret: {group_name: shop}\ntables: [{table: t}]\n", "bad name"),
        ("name: shop\nsecret: {group_name: shop}\ntables: [{table: t, incremental: [1]}]\n",
         "'incremental' must be the cursor column's name"),
        ("name: shop\nsecret: {group_name: shop}\ntables: [{table: t, incremental: {column: x}}]\n",
         "mapping with cursor_path"),
        ("name: shop\nsecret: {group_name: shop}\ntables: [{table: t, colour: red}]\n", "unknown key(s) ['colour']"),
        ("name: shop\nsecret: {group_name: shop}\ntables: [{table: t}]\noptions: {concurency: 2}\n",
         "unknown option(s) ['concurency']"),
    ],
)
def test_bad_yaml_is_a_clear_error_naming_the_field(yaml: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _defs(yaml)
    assert message in str(info.value)


def test_a_missing_attribute_is_named_by_dagster() -> None:
    with pytest.raises(Exception, match="secret"):
        SqlSourceComponent.resolve_from_yaml("name: shop\ntables: [{table: t}]\n")


def test_dg_finds_the_component_through_the_entry_point() -> None:
    (entry,) = [e for e in entry_points(group="dagster_dg_cli.registry_modules") if e.name == "oso_dagster"]
    module = entry.load()
    assert module is oso_dagster and "SqlSourceComponent" in dir(module)
    assert module.SqlSourceComponent is SqlSourceComponent


def test_the_scaffolder_writes_a_component_that_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dagster.components.scaffold.scaffold import ScaffoldRequest
    from oso_dagster.location.component import SqlSourceScaffolder, SqlSourceScaffoldParams

    target = tmp_path / "defs" / "crm"
    target.mkdir(parents=True)
    SqlSourceScaffolder().scaffold(ScaffoldRequest(
        type_name="oso_dagster.SqlSourceComponent", target_path=target, scaffold_format="yaml",
        project_root=tmp_path, params=SqlSourceScaffoldParams(tables=["accounts", "contacts"]),
    ))
    text = (target / "defs.yaml").read_text()
    assert "type: oso_dagster.SqlSourceComponent" in text
    attributes = text.split("attributes:", 1)[1]
    defs = _defs(textwrap.dedent(attributes))
    (assets_def,) = list(defs.assets or [])
    assert set(assets_def.keys) == {AssetKey(["crm", "accounts"]), AssetKey(["crm", "contacts"])}
