"""Offline checks of this source package: the replication loads, and the dbt project parses.

No database and no warehouse are needed: dbt only parses, against a throwaway DuckDB profile.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, AssetsDefinition

import oso_source_{{ cookiecutter.source_name }}.assets as assets_module
from oso_dagster.factories.sql import source_of
from oso_dagster.naming import warehouse_name

SOURCE = {{ cookiecutter.source_name | pystr }}
PACKAGE = {{ ("oso_source_" ~ cookiecutter.source_name) | pystr }}


def replications() -> list[AssetsDefinition]:
    """What oso-dagster's discovery collects from the entry point module."""
    return [v for v in vars(assets_module).values() if isinstance(v, AssetsDefinition) and source_of(v)]


def dbt_project() -> Path:
    return Path(str(resources.files(PACKAGE) / "dbt"))


def test_asset_keys_are_source_and_table() -> None:
    defs = replications()
    assert defs, "assets.py defines no sql_assets(...)"
    for assets_def in defs:
        source = source_of(assets_def)
        assert source is not None and source.name == SOURCE
        expected = {AssetKey([SOURCE, warehouse_name(table.table)]) for table in source.tables}
        assert set(assets_def.keys) == expected


def test_dbt_sources_point_at_the_assets() -> None:
    sources_file = dbt_project() / "models" / "staging" / f"_{SOURCE}__sources.yml"
    sources = yaml.safe_load(sources_file.read_text(encoding="utf-8"))["sources"]
    declared = {
        AssetKey(table["meta"]["dagster"]["asset_key"]) for source in sources for table in source["tables"]
    }
    replicated = {key for assets_def in replications() for key in assets_def.keys}
    assert declared == replicated


def test_dbt_project_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt.cli.main import dbtRunner

    project = tmp_path / "project"
    shutil.copytree(dbt_project(), project)  # dbt writes target/ and logs/: keep them out of the package
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"oso": {"target": "dev", "outputs": {"dev": {"type": "duckdb", "path": ":memory:"}}}}),
        encoding="utf-8",
    )
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(project), "--profiles-dir", str(profiles),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    )
    assert result.success, result.exception
    manifest = result.result
    models = {node.name for node in manifest.nodes.values() if node.resource_type == "model"}
    sources = {source.name for source in manifest.sources.values()}
    replicated = {key.path[1] for assets_def in replications() for key in assets_def.keys}
    assert sources == replicated
    assert {f"stg_{SOURCE}__{name}" for name in replicated} <= models
