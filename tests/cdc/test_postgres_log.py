"""PostgreSQL's change log as a sync reads it: the pgoutput decoder, pages, acknowledgements, retention.

Against a real server with ``wal_level=logical`` (tests/cdc/servers.py), no replication protocol mocked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from oso_dagster.errors import SourceDatabaseError
from oso_dagster.run.cdc import postgres
from oso_dagster.run.cdc.changes import ChangePage

KEYS = {("public", "t"): ["id"], ("public", "pair"): ["a", "b"]}


@pytest.fixture
def engine(logical_pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS t, pair, other"))
        conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, body text, n int)"))
        conn.execute(sa.text("CREATE TABLE pair (a int, b varchar(10), v text, PRIMARY KEY (a, b))"))
        conn.execute(sa.text("CREATE TABLE other (id int PRIMARY KEY)"))
    yield engine
    postgres.drop(engine, "src")
    engine.dispose()


def _sql(engine: sa.Engine, *statements: str) -> None:
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def _read_all(engine: sa.Engine, max_changes: int = 50_000) -> list[ChangePage]:
    end = postgres.end_position(engine)
    pages = []
    for page in postgres.pages(engine, "src", end, KEYS, max_changes):
        pages.append(page)
        postgres.acknowledge(engine, "src", page.end)
    postgres.acknowledge(engine, "src", end)
    return pages


def test_keys_of_inserts_updates_deletes_and_key_changes(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t"), ("public", "pair")], resumed=False)
    _sql(engine,
         "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
         "UPDATE t SET n = 20 WHERE id = 2",
         "UPDATE t SET id = 30 WHERE id = 3",  # the old key and the new one both changed
         "DELETE FROM t WHERE id = 1",
         "INSERT INTO pair VALUES (1, 'x', 'v')",
         "INSERT INTO other VALUES (1)")  # not in the publication
    pages = _read_all(engine)
    keys = set().union(*(p.tables[("public", "t")].keys for p in pages if ("public", "t") in p.tables))
    assert keys == {("1",), ("2",), ("3",), ("30",)}
    assert {k for p in pages for k in p.tables.get(("public", "pair"), ChangePage({})).keys} == {("1", "x")}
    assert all(name in KEYS for p in pages for name in p.tables)
    assert sum(p.changes for p in pages) == 7
    assert _read_all(engine) == []  # acknowledged: nothing is read twice


def test_unchanged_toast_values_still_give_the_key(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    _sql(engine, "INSERT INTO t SELECT 7, string_agg(md5(random()::text), '') FROM generate_series(1, 2000)")
    _read_all(engine)
    _sql(engine, "UPDATE t SET n = 1 WHERE id = 7")  # body (TOASTed, ~64 KB) is sent as 'unchanged'
    (page,) = _read_all(engine)
    assert page.tables[("public", "t")].keys == {("7",)}


def test_pages_end_on_transaction_boundaries(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    for start in (0, 100, 200):
        _sql(engine, f"INSERT INTO t SELECT g, 'x', g FROM generate_series({start + 1}, {start + 100}) g")
    pages = _read_all(engine, max_changes=50)
    assert [p.changes for p in pages] == [100, 100, 100]  # a transaction is never split
    assert [len(p.tables[("public", "t")].keys) for p in pages] == [100, 100, 100]


def test_truncate_is_flagged(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    _sql(engine, "INSERT INTO t VALUES (1, 'a', 1)", "TRUNCATE t", "INSERT INTO t VALUES (2, 'b', 2)")
    pages = _read_all(engine)
    assert any(p.tables[("public", "t")].truncated for p in pages)


def test_a_quiet_source_on_a_busy_server_does_not_hold_wal(engine: sa.Engine) -> None:
    """Writes to tables outside the publication: acknowledging the end lets the slot move on."""
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    _sql(engine, "INSERT INTO other SELECT g FROM generate_series(1, 50000) g")
    before = postgres.retained_wal_bytes(engine, "src")
    assert before is not None and before > 1_000_000
    _sql(engine, "CHECKPOINT")  # logs the running transactions, from where the slot may restart
    assert _read_all(engine) == []
    after = postgres.retained_wal_bytes(engine, "src")
    assert after is not None and after < before / 10


def test_a_missing_slot_fails_with_the_fix(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    _sql(engine, "SELECT pg_drop_replication_slot('oso_src')")
    with pytest.raises(SourceDatabaseError, match="oso-sources drop-cdc src") as raised:
        postgres.prepare(engine, "src", [("public", "t")], resumed=True)
    assert "no longer exists" in str(raised.value)


def test_publication_follows_the_table_list(engine: sa.Engine) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    postgres.prepare(engine, "src", [("public", "t"), ("public", "pair")], resumed=True)
    with engine.connect() as conn:
        tables = conn.execute(sa.text(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'oso_src' ORDER BY 1")).scalars().all()
    assert tables == ["pair", "t"]
    assert postgres.drop(engine, "src") == ["replication slot oso_src", "publication oso_src"]
    assert postgres.drop(engine, "src") == []


def test_a_dropped_publication_fails_with_the_fix(engine: sa.Engine) -> None:
    """PostgreSQL sends nothing for a missing publication, silently: the sync must refuse instead."""
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    _sql(engine, "DROP PUBLICATION oso_src")
    with pytest.raises(SourceDatabaseError, match="publication 'oso_src' no longer exists"):
        postgres.prepare(engine, "src", [("public", "t")], resumed=True)


def test_tables_added_to_the_publication_are_named(engine: sa.Engine) -> None:
    """Their earlier changes were never recorded: the sync copies them again."""
    _, added = postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    assert added == {("public", "t")}
    _, added = postgres.prepare(engine, "src", [("public", "t"), ("public", "pair")], resumed=True)
    assert added == {("public", "pair")}
    _, added = postgres.prepare(engine, "src", [("public", "t"), ("public", "pair")], resumed=True)
    assert added == set()


def test_a_long_transaction_lands_in_the_sync_after_its_commit(engine: sa.Engine, logical_pg_url: str) -> None:
    postgres.prepare(engine, "src", [("public", "t")], resumed=False)
    other = sa.create_engine(logical_pg_url)
    with other.connect() as long_running:
        long_running.execute(sa.text("INSERT INTO t VALUES (1, 'open', 1)"))  # not committed yet
        _sql(engine, "INSERT INTO t VALUES (2, 'committed', 2)")
        (page,) = _read_all(engine)
        assert page.tables[("public", "t")].keys == {("2",)}
        long_running.commit()
    (page,) = _read_all(engine)
    assert page.tables[("public", "t")].keys == {("1",)}
    other.dispose()
