"""The Dagster code location: ``dagster dev -m oso_dagster.definitions``.

Loading it discovers installed source packages and (re)uses the cached dbt manifest. It connects to
no database and resolves no secret; that happens when a run starts.

The manifest check comes first, before Dagster is imported: when the installed packages changed, ``dbt
parse`` then runs in the background while the rest of the code location imports and discovers sources
(:mod:`oso_dagster.location.definitions` assembles it).
"""

from __future__ import annotations

from oso_dagster.location import dbt_manifest
from oso_dagster.location.entry_points import installed_dbt_packages, installed_entry_points
from oso_dagster.settings import Settings

_settings = Settings.from_env()
_entries = installed_entry_points()  # scanned once, for the dbt packages and the sources alike
_manifest_job = dbt_manifest.start(_settings, installed_dbt_packages(_entries))

# Imported after the manifest job started so the two overlap (see the module docstring).
from oso_dagster.location.definitions import build_definitions  # noqa: E402
from oso_dagster.location.discovery import discover  # noqa: E402

defs = build_definitions(_settings, discover(_settings.on_broken_source, _entries), manifest_job=_manifest_job)
