"""An incremental table's first sync streams straight into DuckDB (oso_dagster.run.first_load).

It must land what dlt's path lands (values and column types), leave dlt's cursor state where dlt would, so
the next sync continues without a gap or duplicate, and a run that dies between the load and the state must
be safe to run again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import run_sql
from dlt.sources import incremental
from oso_dagster.run import first_load, replicate

from replication.helpers import column_types, materialization_metadata, query, rows_by_id, run, run_ok, set_secret

pytestmark = [pytest.mark.slow]

_TIMESTAMP = {"sqlite": "DATETIME", "postgresql": "timestamp", "mysql": "datetime(6)"}


def _tables() -> list[dict[str, Any]]:
    return [{"table": "events", "incremental": incremental("updated_at")}]


def _create(url: str, rows: int = 300) -> None:
    dialect = url.split(":")[0].split("+")[0]
    kind = _TIMESTAMP[dialect]
    run_sql(url, f"CREATE TABLE events (id integer PRIMARY KEY, updated_at {kind} NOT NULL, "
                 "amount decimal(12,2), v varchar(20))")
    values = ", ".join(
        f"({i}, '2026-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}', {i}.25, "
        f"{'NULL' if i % 10 == 0 else repr('v' + str(i))})"
        for i in range(1, rows + 1)
    )
    run_sql(url, f"INSERT INTO events VALUES {values}")


def test_first_sync_lands_directly_and_continues(source_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(source_url)
    set_secret(monkeypatch, "fl", source_url)
    first = materialization_metadata(run_ok("fl", _tables()))["events"]
    assert first["loader"] == "duckdb direct first load, then dlt"
    assert first["rows_loaded"] == 300
    assert query("SELECT count(*), count(DISTINCT id) FROM fl.events") == [(300, 300)]
    assert rows_by_id("fl", "events")[7]["amount"] == Decimal("7.25")

    # the same table through dlt's own first sync lands the same values and column types
    set_secret(monkeypatch, "fl_dlt", source_url)
    with monkeypatch.context() as patch:
        patch.setattr(first_load, "applies", lambda *args: False)
        assert materialization_metadata(run_ok("fl_dlt", _tables()))["events"]["loader"] == "dlt"
    assert rows_by_id("fl", "events") == rows_by_id("fl_dlt", "events")
    assert column_types("fl", "events") == column_types("fl_dlt", "events")

    # the next sync is dlt's, from the stored cursor: the two changes and the row at the cursor value
    run_sql(source_url, "INSERT INTO events VALUES (301, '2026-02-01 00:00:00', 1.50, 'new')",
            "UPDATE events SET v = 'changed', updated_at = '2026-02-02 00:00:00' WHERE id = 5")
    for name in ("fl", "fl_dlt"):
        second = materialization_metadata(run_ok(name, _tables()))["events"]
        assert (second["loader"], second["rows_loaded"]) == ("dlt", 3), name
        assert query(f"SELECT count(*), count(DISTINCT id) FROM {name}.events") == [(301, 301)]
        assert query(f"SELECT v FROM {name}.events WHERE id = 5") == [("changed",)]
    assert rows_by_id("fl", "events") == rows_by_id("fl_dlt", "events")


def test_a_run_dying_before_the_state_is_safe_to_rerun(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(source_url, rows=50)
    set_secret(monkeypatch, "fk", source_url)

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed after the direct load")

    with monkeypatch.context() as patch:
        patch.setattr(replicate, "_load_with_dlt", dies)
        assert not run("fk", _tables(), retries=0).success
    assert query("SELECT count(*) FROM fk.events") == [(50,)]  # landed, but no cursor state stored
    # no state and a filled table: dlt's path reads it all again and merges on the key
    again = materialization_metadata(run_ok("fk", _tables()))["events"]
    assert (again["loader"], again["rows_loaded"]) == ("dlt", 50)
    assert query("SELECT count(*), count(DISTINCT id) FROM fk.events") == [(50, 50)]
