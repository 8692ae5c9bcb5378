"""The umbrella project's manifest, cached: parsed by ``dbt parse`` in the background while the code location
imports, re-parsed only when its fingerprint changes, with the packages that break the parse left out.

Sits above :mod:`oso_dagster.location.dbt_project` (writing the project, running dbt) and
:mod:`oso_dagster.location.dbt_isolation` (finding the broken packages), and uses both.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from oso_dagster.errors import DbtProjectError
from oso_dagster.location.dbt_isolation import isolate
from oso_dagster.location.dbt_project import (
    BrokenDbtPackage,
    dbt_command,
    dbt_env,
    dbt_project_name,
    fingerprint,
    link_local_packages,
    write_project,
)
from oso_dagster.location.entry_points import DbtPackage
from oso_dagster.settings import Settings

_FINGERPRINT_FILE = "oso_fingerprint.txt"
_BROKEN_FILE = "oso_broken_packages.json"


@dataclass(frozen=True)
class Staging:
    """The parsed umbrella project: its manifest and the packages left out of it."""

    manifest: Path
    broken: tuple[BrokenDbtPackage, ...] = ()


def _save_broken(target: Path, broken: Sequence[BrokenDbtPackage]) -> None:
    data = [{"distribution": b.distribution, "message": b.message} for b in broken]
    (target / _BROKEN_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")


def _load_broken(target: Path) -> tuple[BrokenDbtPackage, ...] | None:
    """The cached broken packages; ``None`` when the cache file is unreadable (a cache miss: parse again)."""
    path = target / _BROKEN_FILE
    if not path.is_file():
        return ()
    try:
        return tuple(BrokenDbtPackage(str(item["distribution"]), str(item["message"]))
                     for item in json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


class ManifestJob:
    """The umbrella project's manifest: already current, or being parsed by ``dbt parse`` in the background.

    Started before the rest of the code location imports, so dbt's start-up and parse overlap with them. When
    the parse fails, the packages whose models break it are found and left out
    (:mod:`oso_dagster.location.dbt_isolation`); the outcome is cached under the same fingerprint as the manifest.
    """

    def __init__(self, staging: Staging | None, process: subprocess.Popen[str] | None = None,
                 lock: FileLock | None = None, key: str = "", settings: Settings | None = None,
                 packages: Sequence[DbtPackage] = (), broken: Sequence[BrokenDbtPackage] = ()) -> None:
        self._staging = staging
        self._process = process
        self._lock = lock
        self._key = key
        self._settings = settings
        self._packages = list(packages)
        self._broken = list(broken)

    def result(self) -> Staging | None:
        """Wait for the parse (if one runs); the manifest and broken packages, or ``None`` without dbt models."""
        if self._process is None or self._staging is None:
            return self._staging
        try:
            output, _ = self._process.communicate()
            manifest = self._staging.manifest
            project_dir = manifest.parent.parent
            packages, broken = self._packages, list(self._broken)
            if self._process.returncode != 0 or not manifest.is_file():
                assert self._settings is not None
                packages, found = isolate(project_dir, self._settings, packages, output or "")
                broken.extend(found)
            _save_broken(manifest.parent, broken)
            (manifest.parent / _FINGERPRINT_FILE).write_text(self._key, encoding="utf-8")
            self._process = None
            self._staging = Staging(manifest, tuple(broken))
            return self._staging
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def start(settings: Settings, packages: Sequence[DbtPackage]) -> ManifestJob:
    """Write the umbrella project and start ``dbt parse`` unless the cached manifest is still current."""
    if not any(p.dbt_dir is not None for p in packages):
        return ManifestJob(None)
    project_dir = settings.dbt_dir
    project_dir.mkdir(parents=True, exist_ok=True)
    target = project_dir / "target"
    manifest = target / "manifest.json"
    key = fingerprint(settings, packages)
    marker = target / _FINGERPRINT_FILE
    lock = FileLock(str(project_dir / ".prepare.lock"))
    lock.acquire()
    if manifest.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == key:
        cached = _load_broken(target)
        if cached is not None:
            lock.release()
            return ManifestJob(Staging(manifest, cached))
    try:
        marker.unlink(missing_ok=True)
        (target / _BROKEN_FILE).unlink(missing_ok=True)
        usable, broken = _readable(packages)
        write_project(project_dir, settings, usable)
        link_local_packages(project_dir, usable)
        manifest.unlink(missing_ok=True)
        process = subprocess.Popen(
            dbt_command(project_dir, "parse"), cwd=project_dir, env=dbt_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    except BaseException:
        lock.release()
        raise
    return ManifestJob(Staging(manifest), process, lock, key, settings, usable, broken)


def _readable(packages: Sequence[DbtPackage]) -> tuple[list[DbtPackage], list[BrokenDbtPackage]]:
    """Packages whose ``dbt_project.yml`` names them; the others are broken before dbt even starts."""
    usable: list[DbtPackage] = []
    broken: list[BrokenDbtPackage] = []
    for package in packages:
        if package.dbt_dir is None:
            continue
        try:
            dbt_project_name(package)
        except DbtProjectError as exc:
            broken.append(BrokenDbtPackage.of(package, str(exc)))
            continue
        usable.append(package)
    return usable, broken
