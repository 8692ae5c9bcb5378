"""Hostile input: names that need quoting everywhere, missing tables, very wide rows, very long values,
and a source that drops the connection mid-read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import dagster
import pytest
import sqlalchemy as sa
from dlt.sources import incremental
from oso_dagster.factories.sql import source_of
from oso_dagster.ops.preflight import check_source
from replication.helpers import build, failure_text, run, set_secret

from reliability.helpers import cursor_state, src, wh, wh_columns

TABLE = 'select'
COLUMNS = ["id", "order", "group", "a b", 'we"ird\'q', "ürün", "deleted?"]
OTHER = 'Sales "Q1" \'ürün\''


def _hostile_schema() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    meta = sa.MetaData()
    first = sa.Table(
        TABLE, meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("order", sa.Integer, nullable=False),
        sa.Column("group", sa.String(40)),
        sa.Column("a b", sa.String(40)),
        sa.Column('we"ird\'q', sa.String(40)),
        sa.Column("ürün", sa.String(40)),
        sa.Column("deleted?", sa.Boolean),
    )
    other = sa.Table(OTHER, meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("select", sa.String(40)))
    return meta, first, other


def _row(i: int, order: int, deleted: bool = False) -> dict[str, object]:
    return {"id": i, "order": order, "group": f"g{i}", "a b": "x y", 'we"ird\'q': "q'\"", "ürün": "çay",
            "deleted?": deleted}


@pytest.mark.parametrize("kind", [pytest.param("pg_url", marks=pytest.mark.postgres),
                                  pytest.param("mysql_url", marks=pytest.mark.mariadb)])
def test_names_with_quotes_spaces_reserved_words_and_non_ascii(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = request.getfixturevalue(kind)
    set_secret(monkeypatch, "hostile", url)
    meta, first, other = _hostile_schema()
    engine = sa.create_engine(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(first.insert(), [_row(i, i) for i in range(1, 6)])
        conn.execute(other.insert(), [{"id": 1, "select": "a"}, {"id": 2, "select": "b"}])
    tables = [
        {"table": TABLE, "incremental": incremental("order"), "soft_delete_column": "deleted?",
         "reconcile_deletes": True},
        {"table": OTHER},
    ]
    result = run("hostile", tables, retries=0)
    assert result.success, failure_text(result)
    with engine.begin() as conn:
        conn.execute(first.update().where(first.c.id == 2).values({"order": 10, "deleted?": True}))
        conn.execute(first.delete().where(first.c.id == 3))
        conn.execute(first.update().where(first.c.id == 4).values({"order": 11, "group": "changed"}))
        conn.execute(other.delete().where(other.c.id == 1))
    engine.dispose()
    result = run("hostile", tables, retries=0)
    assert result.success, failure_text(result)
    landed = wh_columns("hostile", "select")
    assert {"order", "group", "a_b", "we_ird_q", "urun"} <= set(landed), landed
    assert wh('SELECT id, "group", "a_b", "we_ird_q", "urun" FROM hostile."select" ORDER BY id') == [
        (1, "g1", "x y", "q'\"", "çay"), (4, "changed", "x y", "q'\"", "çay"), (5, "g5", "x y", "q'\"", "çay")]
    other_name = next(t for (t,) in wh("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = 'hostile' AND table_name LIKE 'sales%'"))
    assert wh(f'SELECT id, "select" FROM hostile."{other_name}"') == [(2, "b")]
    # the pre-flight checks quote the names too
    findings = list(check_source(source_of(build("hostile", tables))))
    assert not [f for f in findings if f.level == "error"], findings


@pytest.mark.postgres
def test_missing_table_fails_naming_it_and_the_others_still_load(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_secret(monkeypatch, "partial", pg_url)
    src(pg_url, "CREATE TABLE users (id int PRIMARY KEY, name text)")
    src(pg_url, "INSERT INTO users VALUES (1, 'a'), (2, 'b')")
    result = run("partial", [{"table": "users"}, {"table": "no_such_table"}], retries=0)
    assert not result.success
    assert "'no_such_table' does not exist" in failure_text(result)
    assert wh("SELECT id, name FROM partial.users ORDER BY id") == [(1, "a"), (2, "b")]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"users"}


@pytest.mark.postgres
@pytest.mark.slow
def test_wide_rows_and_long_values(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_secret(monkeypatch, "wide", pg_url)
    columns = ", ".join(f"c{i} int" for i in range(300))
    src(pg_url, f"CREATE TABLE wide (id int PRIMARY KEY, {columns})")
    values = ", ".join(f"g + {i}" for i in range(300))
    src(pg_url, f"INSERT INTO wide SELECT g, {values} FROM generate_series(1, 2000) g")
    src(pg_url, "CREATE TABLE long_text (id int PRIMARY KEY, body text)")
    src(pg_url, "INSERT INTO long_text SELECT g, repeat(md5(g::text), 10 * 1024 * 1024 / 32) "
                "FROM generate_series(1, 3) g")
    result = run("wide", [{"table": "wide"}, {"table": "long_text"}], retries=0)
    assert result.success, failure_text(result)
    assert len([c for c in wh_columns("wide", "wide") if c.startswith("c")]) == 300
    assert wh("SELECT count(*), sum(c299 - c0) FROM wide.wide") == [(2000, 2000 * 299)]
    expected = src(pg_url, "SELECT id, length(body), md5(body) FROM long_text ORDER BY id")
    assert wh("SELECT id, length(body), md5(body) FROM wide.long_text ORDER BY id") == expected
    assert expected[0][1] == 10 * 1024 * 1024


class _Terminator:
    """Kills (pg_terminate_backend) every connection reading ``table`` from another connection, until stopped."""

    def __init__(self, url: str, database: str, table: str) -> None:
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self.database, self.table = database, table
        self.killed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                pids = conn.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() "
                    "AND state <> 'idle' AND (query ILIKE :pattern OR query ILIKE 'FETCH%')"),
                    {"db": self.database, "pattern": f"%{self.table}%"}).scalars().all()
                for pid in pids:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    self.killed += 1
                time.sleep(0.02)

    def __enter__(self) -> _Terminator:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()


@pytest.fixture
def big_pg(pg_url: str) -> Iterator[str]:
    src(pg_url, "CREATE TABLE big (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text)")
    src(pg_url, "INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1, 1000) g")
    yield pg_url


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["connectorx", "pyarrow"])
@pytest.mark.parametrize("incremental_table", [True, False], ids=["incremental", "full_refresh"])
def test_disconnect_mid_read_is_retryable_and_commits_nothing(
    big_pg: str, monkeypatch: pytest.MonkeyPatch, backend: str, incremental_table: bool
) -> None:
    set_secret(monkeypatch, "cut", big_pg)
    table: dict[str, object] = {"table": "big", "backend": backend}
    if incremental_table:
        table["incremental"] = incremental("seq")
    first = run("cut", [table], retries=0)
    assert first.success, failure_text(first)
    src(big_pg, "INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1001, 1000000) g")
    before = wh("SELECT count(*), sum(id) FROM cut.big")
    database = sa.engine.make_url(big_pg).database
    assets = build("cut", [table], retries=1, retry_delay_s=0)
    with _Terminator(big_pg, database or "", "big") as terminator:
        result = dagster.materialize([assets], raise_on_error=False, instance=dagster.DagsterInstance.ephemeral())
    assert terminator.killed >= 1
    assert not result.success
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" in kinds, failure_text(result)  # a Failure with allow_retries=True
    text = failure_text(result)
    assert "may be retried" in text, text
    assert wh("SELECT count(*), sum(id) FROM cut.big") == before  # no partial commit
    if incremental_table:
        assert cursor_state("cut", "big", "seq") == 1000  # not advanced
