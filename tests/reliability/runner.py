"""Run one source's replication in this (separate) process, as a scheduled run would.

Usage: ``python runner.py '<json spec>'`` where the spec is ``{"name": ..., "tables": [...], "options": {...}}``;
a table's ``"incremental"`` is the cursor column name. Exits 0 on success, 1 on failure, and prints the
failure descriptions. Uses the Dagster instance of ``DAGSTER_HOME`` when set, so its storage can be inspected.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import dagster
from dlt.sources import incremental
from oso_dagster import SecretReference, sql_assets


def _tables(spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tables = []
    for entry in spec:
        entry = dict(entry)
        if "incremental" in entry:
            entry["incremental"] = incremental(entry["incremental"])
        tables.append(entry)
    return tables


def main(raw: str) -> int:
    spec = json.loads(raw)
    name = spec["name"]
    assets = sql_assets(name, SecretReference(group_name=name, key="db_connection_string"),
                        _tables(spec["tables"]), **spec.get("options", {}))
    instance = dagster.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dagster.DagsterInstance.ephemeral()
    result = dagster.materialize([assets], instance=instance, raise_on_error=False)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            user = getattr(data, "user_failure_data", None)
            print("FAILURE:", user.description if user is not None else data.error.message, flush=True)
    print("SUCCESS" if result.success else "FAILED", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
