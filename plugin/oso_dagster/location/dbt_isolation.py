"""Finds the source packages whose staging models break the umbrella ``dbt parse``, so the others still load.

Runs only after the umbrella parse failed, and its outcome is cached with the manifest. First guess: the
packages dbt's error names; the project is parsed without them, and if that works they are the broken ones
(one extra parse). Otherwise the packages are added one at a time and each one that makes the parse fail is
left out (one parse per package), which also catches two packages that only clash together. If even the
project without any package fails, no package is to blame and the load fails with dbt's error, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from oso_dagster.location.dbt_project import BrokenDbtPackage, dbt_error, dbt_project_name, parse_failed, parse_now
from oso_dagster.location.entry_points import DbtPackage
from oso_dagster.settings import Settings


def isolate(
    project_dir: Path, settings: Settings, packages: Sequence[DbtPackage], output: str
) -> tuple[list[DbtPackage], list[BrokenDbtPackage]]:
    """``(packages kept, packages left out)``; ``project_dir`` is left parsed with the kept ones."""
    named = [i for i, package in enumerate(packages) if _mentioned(output, package)]
    if named:
        rest = [p for i, p in enumerate(packages) if i not in named]
        if parse_now(project_dir, settings, rest)[0]:
            return rest, [BrokenDbtPackage.of(packages[i], dbt_error(output)) for i in named]
    if not parse_now(project_dir, settings, [])[0]:
        raise parse_failed(project_dir, output)
    kept: list[DbtPackage] = []
    broken: list[BrokenDbtPackage] = []
    last_ok = True
    for package in packages:
        last_ok, attempt = parse_now(project_dir, settings, [*kept, package])
        if last_ok:
            kept.append(package)
        else:
            broken.append(BrokenDbtPackage.of(package, dbt_error(attempt)))
    if not last_ok:
        ok, attempt = parse_now(project_dir, settings, kept)
        if not ok:
            raise parse_failed(project_dir, attempt)
    return kept, broken


def _mentioned(output: str, package: DbtPackage) -> bool:
    """dbt names a package by its project name (``model.oso_source_x.stg_…``) or by a path inside it."""
    name = dbt_project_name(package)
    return bool(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", output)) or (
        package.dbt_dir is not None and str(package.dbt_dir) in output
    )
