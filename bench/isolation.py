"""The environment every benchmark child runs in: a scratch OSO_HOME and nothing inherited that could point at
a user's warehouse, state or secrets (``OSO_*``, ``DAGSTER_HOME``, ``DAGSTER__*``, dlt's ``DESTINATION__*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_INHERITED_PREFIXES = ("OSO_", "DAGSTER__", "DESTINATION__")


def bench_env(home: str | Path, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default ``os.environ``) without user settings, with the warehouse inside ``home``."""
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if not k.startswith(_INHERITED_PREFIXES) and k != "DAGSTER_HOME"}
    env["OSO_HOME"] = str(home)
    env["OSO_DUCKDB_PATH"] = str(Path(home) / "warehouse.duckdb")
    env.update(extra)
    return env
