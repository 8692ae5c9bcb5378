"""Finding the packages whose dbt models break the umbrella parse, with real dbt, when dbt's error names none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oso_dagster.location import dbt_manifest
from oso_dagster.location.entry_points import DbtPackage
from oso_dagster.settings import Settings

pytestmark = pytest.mark.slow


def _package(root: Path, name: str, model: str, project: str | None = None) -> DbtPackage:
    folder = root / name
    (folder / "models").mkdir(parents=True)
    header = f"name: {name}\n" if project is None else project
    (folder / "dbt_project.yml").write_text(
        header + "version: '1.0.0'\nconfig-version: 2\nprofile: oso\nmodel-paths: [models]\n", encoding="utf-8")
    (folder / "models" / f"{name}_model.sql").write_text(model, encoding="utf-8")
    return DbtPackage(f"dist-{name}", "1.0", folder)


def test_a_package_that_dbt_does_not_name_is_found_and_left_out(tmp_path: Path, oso_env: Path) -> None:
    packages = [
        _package(tmp_path, "pa", "select 1 as x\n"),
        # dbt's error names the model and file but not the package: only parsing package by package finds it
        _package(tmp_path, "pb", "select {{ ref( }} as x\n"),
        _package(tmp_path, "pc", "select 2 as x\n"),
        _package(tmp_path, "pd", "select 3 as x\n", project="# no name\n"),
    ]
    settings = Settings.from_env()
    staging = dbt_manifest.start(settings, packages).result()
    assert staging is not None
    assert [b.distribution for b in staging.broken] == ["dist-pd", "dist-pb"]
    by_name = {b.distribution: b.message for b in staging.broken}
    assert "unexpected '}'" in by_name["dist-pb"] and "Fix the model or YAML file" in by_name["dist-pb"]
    assert "has no 'name'" in by_name["dist-pd"]
    nodes = json.loads(staging.manifest.read_text(encoding="utf-8"))["nodes"]
    assert {n["name"] for n in nodes.values()} == {"pa_model", "pc_model"}
    # The umbrella project itself no longer lists them, so `dbt build` at run time parses too.
    listed = (settings.dbt_dir / "packages.yml").read_text(encoding="utf-8")
    assert "/pa" in listed and "/pc" in listed and "/pb" not in listed and "/pd" not in listed

    again = dbt_manifest.start(settings, packages)  # same fingerprint: cached, with the same verdict
    assert again.result() == staging

    (packages[1].dbt_dir / "models" / "pb_model.sql").write_text("select 4 as x\n", encoding="utf-8")
    fixed = dbt_manifest.start(settings, packages).result()
    assert fixed is not None and [b.distribution for b in fixed.broken] == ["dist-pd"]
    nodes = json.loads(fixed.manifest.read_text(encoding="utf-8"))["nodes"]
    assert {n["name"] for n in nodes.values()} == {"pa_model", "pb_model", "pc_model"}


def test_a_corrupt_cached_verdict_is_a_cache_miss(tmp_path: Path, oso_env: Path) -> None:
    packages = [_package(tmp_path, "pa", "select 1 as x\n")]
    settings = Settings.from_env()
    first = dbt_manifest.start(settings, packages).result()
    assert first is not None and first.broken == ()
    cached = first.manifest.parent / "oso_broken_packages.json"
    cached.write_text('[{"distribution": "dist-pa"', encoding="utf-8")  # cut short, e.g. by a full disk

    again = dbt_manifest.start(settings, packages).result()  # parsed again instead of failing on the cache
    assert again is not None and again.broken == ()
    assert json.loads(cached.read_text(encoding="utf-8")) == []
    nodes = json.loads(again.manifest.read_text(encoding="utf-8"))["nodes"]
    assert {n["name"] for n in nodes.values()} == {"pa_model"}
