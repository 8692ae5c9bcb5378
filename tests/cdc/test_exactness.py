"""CDC end to end against throw-away servers with a change log (tests/cdc/servers.py): after any mix of
inserts, updates (TOASTed values left alone, keys changed) and deletes, some committed while a sync runs, and
after a sync killed mid catch-up, the warehouse holds exactly the source's rows.

One PostgreSQL and one MariaDB server serve the whole module; every test gets a database of its own (and a
source name of its own, so PostgreSQL's slots ``oso_<source>`` never meet).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster
import duckdb
import pytest
import sqlalchemy as sa
from reliability.helpers import start
from replication.helpers import build, failure_text, materialization_metadata, set_secret, warehouse

pytestmark = pytest.mark.slow

DATABASES = ["postgres", "mariadb"]


# ---------------------------------------------------------------------------------------------------- servers


@pytest.fixture
def pg_server(logical_pg_url: str) -> str:
    """The session's PostgreSQL with ``wal_level=logical`` (tests/cdc/conftest.py)."""
    return logical_pg_url


@pytest.fixture
def mariadb_server(binlog_mariadb_url: str) -> str:
    """The session's MariaDB with a ROW binlog (tests/cdc/conftest.py)."""
    return binlog_mariadb_url


def _fresh_database(server_url: str, kind: str) -> Iterator[str]:
    """A new database on the module's server; dropped (with the slots made in it) after the test."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if kind == "postgres":  # a logical slot pins its database: drop them first
                conn.execute(sa.text("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                     "WHERE database = :d AND NOT active"), {"d": name})
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def pg_db(pg_server: str) -> Iterator[str]:
    yield from _fresh_database(pg_server, "postgres")


@pytest.fixture
def mariadb_db(mariadb_server: str) -> Iterator[str]:
    yield from _fresh_database(mariadb_server, "mariadb")


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(kind, url)`` of a fresh database with a change log."""
    kind = request.param
    return kind, request.getfixturevalue("pg_db" if kind == "postgres" else "mariadb_db")


def source_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------------------------------- workload

# SQL fragments per dialect; {g} is the expression of the row's number
_SQL = {
    "postgres": {
        "short": "md5(random()::text)",
        # > 8 KB of random hex, one value per row (the correlation with {g} makes it a per-row subplan):
        # pglz cannot compress it by the 25% it needs, so PostgreSQL stores it out of line (TOASTed)
        "big": "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300) WHERE ({g}) IS NOT NULL)",
        "amount": "CASE WHEN random() < 0.1 THEN NULL ELSE round((random() * 2000000 - 1000000)::numeric, 2) END",
        "ts": "(timestamp '2020-01-01' + random() * interval '1000 days')",
        "rand": "random()",
        "rows": "generate_series({a}, {b}) AS s(g)",
        "g": "g",
        "ts_type": "timestamp",
    },
    "mariadb": {
        "short": "md5(rand())",
        "big": "(SELECT group_concat(md5(rand()) SEPARATOR '') FROM seq_1_to_300 WHERE ({g}) IS NOT NULL)",
        "amount": "CASE WHEN rand() < 0.1 THEN NULL ELSE round(rand() * 2000000 - 1000000, 2) END",
        "ts": "(timestamp'2020-01-01 00:00:00' + interval floor(rand() * 86400000000000) microsecond)",
        "rand": "rand()",
        "rows": "seq_{a}_to_{b} AS s",
        "g": "s.seq",
        "ts_type": "datetime(6)",
    },
}


def create_tables(engine: sa.Engine, kind: str) -> None:
    ts = _SQL[kind]["ts_type"]
    execute(engine, [
        f"CREATE TABLE events (id int PRIMARY KEY, body text NOT NULL, amount numeric(12,2), ts {ts} NOT NULL, "
        "note varchar(64))",
        "CREATE TABLE pairs (a int NOT NULL, b varchar(255) NOT NULL, v int, w text, PRIMARY KEY (a, b))",
    ])


def execute(engine: sa.Engine, statements: Sequence[str]) -> int:
    """Run ``statements`` in one transaction; return the rows they changed."""
    changed = 0
    with engine.begin() as conn:
        for statement in statements:
            changed += max(conn.exec_driver_sql(statement).rowcount, 0)
    return changed


@dataclass
class Workload:
    """Random inserts, updates and deletes of ``events`` and ``pairs``, in transactions of a few statements."""

    kind: str
    seed: int = 0
    next_id: int = 1  # events ids above every id ever used
    next_g: int = 1  # pairs rows: a = g // 3, b = 'k' || g % 3
    next_tag: int = 1
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def f(self, name: str, g: str = "") -> str:
        return _SQL[self.kind][name].format(g=g)

    def rows(self, a: int, b: int) -> str:
        return _SQL[self.kind]["rows"].format(a=a, b=b)

    def insert_events(self, n: int, big_share: float = 0.03) -> str:
        a, b = self.next_id, self.next_id + n - 1
        self.next_id = b + 1
        g = _SQL[self.kind]["g"]
        return (f"INSERT INTO events (id, body, amount, ts, note) SELECT {g}, CASE WHEN {self.f('rand')} < "
                f"{big_share} THEN {self.f('big', g)} ELSE {self.f('short')} END, {self.f('amount')}, "
                f"{self.f('ts')}, CASE WHEN {self.f('rand')} < 0.3 THEN NULL ELSE {self.f('short')} END "
                f"FROM {self.rows(a, b)}")

    def insert_pairs(self, n: int) -> str:
        a, b = self.next_g, self.next_g + n - 1
        self.next_g = b + 1
        g = _SQL[self.kind]["g"]
        return (f"INSERT INTO pairs (a, b, v, w) SELECT floor({g} / 3), concat('k', mod({g}, 3)), "
                f"CASE WHEN {self.f('rand')} < 0.2 THEN NULL ELSE floor({self.f('rand')} * 1000000) END, "
                f"CASE WHEN {self.f('rand')} < 0.2 THEN NULL ELSE {self.f('short')} END FROM {self.rows(a, b)}")

    def _range(self, top: int, width: int) -> tuple[int, int]:
        low = self.rng.randrange(1, max(top - width, 2))
        return low, low + width

    def statement(self) -> str:
        """One random change statement touching up to a few hundred rows."""
        rng = self.rng
        kind = rng.choices(["ins", "upd", "upd_toasted", "upd_body", "move", "del",
                            "p_ins", "p_upd", "p_move_b", "p_move_a", "p_del"],
                           weights=[8, 14, 4, 3, 4, 6, 4, 6, 2, 2, 3])[0]
        lo, hi = self._range(self.next_id, rng.randrange(50, 600))
        plo, phi = self._range(max(self.next_g // 3, 2), rng.randrange(30, 200))
        rows = f"id BETWEEN {lo} AND {hi}"
        pair_rows = f"a BETWEEN {plo} AND {phi}"
        if kind == "ins":
            return self.insert_events(rng.randrange(50, 400))
        if kind == "upd":  # the TOASTed body left alone
            return (f"UPDATE events SET amount = {self.f('amount')}, note = CASE WHEN {self.f('rand')} < 0.3 THEN NULL "
                    f"ELSE {self.f('short')} END WHERE {rows}")
        if kind == "upd_toasted":  # only rows with a TOASTed body, which is not touched
            return (f"UPDATE events SET ts = {self.f('ts')}, note = NULL WHERE length(body) > 8000 "
                    f"AND id BETWEEN {lo} AND {lo + 3000}")
        if kind == "upd_body":
            return (f"UPDATE events SET body = CASE WHEN {self.f('rand')} < 0.3 THEN {self.f('big', 'id')} ELSE "
                    f"{self.f('short')} END WHERE id BETWEEN {lo} AND {lo + 60}")
        if kind == "move":  # key-changing update: the rows move to ids never used
            width = hi - lo
            base = self.next_id
            self.next_id += width + 1
            return f"UPDATE events SET id = id - {lo} + {base} WHERE {rows}"
        if kind == "del":
            return f"DELETE FROM events WHERE id BETWEEN {lo} AND {lo + rng.randrange(20, 300)}"
        if kind == "p_ins":
            return self.insert_pairs(rng.randrange(50, 400))
        if kind == "p_upd":
            return (f"UPDATE pairs SET v = CASE WHEN {self.f('rand')} < 0.2 THEN NULL ELSE floor({self.f('rand')} * "
                    f"1000000) END WHERE {pair_rows}")
        if kind == "p_move_b":  # the varchar half of the key changes
            self.next_tag += 1
            return f"UPDATE pairs SET b = concat('m{self.next_tag}_', b) WHERE {pair_rows} AND length(b) < 200"
        if kind == "p_move_a":  # the int half of the key changes, to a values never used
            width = phi - plo
            base = self.next_g // 3 + 10
            self.next_g = (base + width + 1) * 3
            return f"UPDATE pairs SET a = a - {plo} + {base} WHERE {pair_rows}"
        return f"DELETE FROM pairs WHERE a BETWEEN {plo} AND {plo + rng.randrange(10, 100)}"

    def setup(self, engine: sa.Engine, events: int = 20_000, pairs: int = 15_000) -> None:
        create_tables(engine, self.kind)
        for _ in range(0, events, 5_000):
            execute(engine, [self.insert_events(5_000)])
        execute(engine, [self.insert_pairs(pairs)])

    def churn(self, engine: sa.Engine, changes: int, per_transaction: int = 3) -> int:
        """Commit transactions of random statements until at least ``changes`` rows changed; return how many."""
        done = 0
        while done < changes:
            done += execute(engine, [self.statement() for _ in range(self.rng.randint(1, per_transaction))])
        return done


def pg_wait_flushed(engine: sa.Engine) -> None:
    """The throw-away server runs with synchronous_commit=off: wait until every commit is in the flushed WAL,
    which is where logical decoding (and so a sync) reads up to."""
    with engine.connect() as conn:
        target = conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()")).scalar()
        for _ in range(200):
            if conn.execute(sa.text("SELECT pg_current_wal_flush_lsn() >= :t"), {"t": target}).scalar():
                return
            time.sleep(0.05)
    raise AssertionError("the WAL was not flushed within 10s")


def settle(kind: str, engine: sa.Engine) -> None:
    if kind == "postgres":
        pg_wait_flushed(engine)


# ---------------------------------------------------------------------------------------------------- comparison

TABLES = {
    "events": (["id"], ["id", "md5(body)", "amount", "ts", "note"]),
    "pairs": (["a", "b"], ["a", "b", "v", "w"]),
}


def _normal(value: Any) -> Any:
    if isinstance(value, float):
        return decimal.Decimal(str(value))
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return value.normalize() if value == value.to_integral_value() else value.quantize(decimal.Decimal("0.01"))
    return value


def _rows(fetched: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(_normal(v) for v in row) for row in fetched), key=repr)


def source_rows(engine: sa.Engine, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return _rows(conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {table}").all())


def warehouse_rows(schema: str, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        quoted = [c if "(" in c else f'"{c}"' for c in columns]
        return _rows(con.sql(f'SELECT {", ".join(quoted)} FROM "{schema}"."{table}"').fetchall())


def assert_exact(engine: sa.Engine, schema: str, tables: Sequence[str] = tuple(TABLES)) -> dict[str, int]:
    """Count, set of keys and every row's content (bodies by md5) the same in the warehouse as in the source."""
    counts = {}
    for table in tables:
        key, columns = TABLES[table]
        want, got = source_rows(engine, table, columns), warehouse_rows(schema, table, columns)
        assert len(got) == len(want), f"{table}: warehouse has {len(got)} rows, source {len(want)}"
        want_keys, got_keys = ({row[:len(key)] for row in rows} for rows in (want, got))
        missing, extra = want_keys - got_keys, got_keys - want_keys
        assert not missing and not extra, (f"{table}: keys missing in the warehouse {sorted(missing)[:10]}, "
                                           f"extra {sorted(extra)[:10]}")
        if got != want:
            wrong = [(w, g) for w, g in zip(want, got, strict=True) if w != g]
            raise AssertionError(f"{table}: {len(wrong)} rows differ, e.g. (source, warehouse): {wrong[:3]}")
        counts[table] = len(want)
    return counts


# ---------------------------------------------------------------------------------------------------- syncs


def sync(name: str, tables: Sequence[dict[str, Any]] | None = None) -> dagster.ExecuteInProcessResult:
    tables = tables if tables is not None else [{"table": t} for t in TABLES]
    return dagster.materialize([build(name, tables, cdc=True, retries=0)], raise_on_error=False)


def sync_ok(name: str, tables: Sequence[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    result = sync(name, tables)
    assert result.success, failure_text(result)[:4000]
    return materialization_metadata(result)


class Writer(threading.Thread):
    """Commits random transactions, a few dozen a second, until stopped."""

    def __init__(self, engine: sa.Engine, workload: Workload) -> None:
        super().__init__(daemon=True)
        self.engine, self.workload = engine, workload
        self.stop = threading.Event()
        self.transactions = self.changes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.changes += execute(self.engine, [self.workload.statement()])
                self.transactions += 1
                self.stop.wait(0.03)
        except BaseException as error:  # reported by the test
            self.error = error


# ---------------------------------------------------------------------------------------------------- tests


def test_exact_after_random_changes_some_during_a_sync(db: tuple[str, str], monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    kind, url = db
    name = source_name("exact")
    set_secret(monkeypatch, name, url)
    engine = sa.create_engine(url)
    work = Workload(kind, seed=1)
    work.setup(engine)
    first = sync_ok(name)
    assert first["events"]["snapshot"] and first["pairs"]["snapshot"]
    assert_exact(engine, name)

    changed = work.churn(engine, 100_000)
    assert changed >= 100_000
    # the second sync catches up while a thread keeps committing: what it misses, the next sync applies
    writer = Writer(engine, work)
    writer.start()
    try:
        second = sync(name)
    finally:
        writer.stop.set()
        writer.join(60)
    assert writer.error is None, repr(writer.error)
    assert second.success, failure_text(second)[:4000]
    assert writer.transactions > 0, "no transaction was committed during the sync"
    meta = materialization_metadata(second)
    assert meta["events"]["rows_upserted"] > 0 and meta["events"]["rows_deleted"] > 0
    assert meta["pairs"]["rows_upserted"] > 0 and meta["pairs"]["rows_deleted"] > 0

    settle(kind, engine)
    sync_ok(name)
    counts = assert_exact(engine, name)
    assert counts["events"] > 1000 and counts["pairs"] > 1000
    with engine.connect() as conn:  # the workload did TOAST bodies, some still there
        assert conn.exec_driver_sql("SELECT count(*) FROM events WHERE length(body) > 8000").scalar()
    engine.dispose()


def _sigkill(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, "the run ended before the kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run exited with {proc.returncode}, not by SIGKILL"


def _kill_after(proc: subprocess.Popen[str], marker: str, timeout: float = 300) -> list[str]:
    """SIGKILL the run as soon as a line of its output contains ``marker``; return its output so far."""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not seen.is_set():
        if proc.poll() is not None:
            reader.join(5)
            pytest.fail(f"the run ended before printing {marker!r}: {''.join(lines)[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {marker!r} within {timeout}s")
        time.sleep(0.01)
    _sigkill(proc)
    reader.join(5)
    return lines


def _catch_up_started(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, prefix: str,
                      seed: int) -> tuple[str, sa.Engine, subprocess.Popen[str]]:
    """A synced source, 150,000 changes in its log (three pages of 50,000 at least), and a sync of them started
    as its own process (stdout piped), for a test to interrupt."""
    url = request.getfixturevalue("pg_db" if kind == "postgres" else "mariadb_db")
    name = source_name(prefix)
    set_secret(monkeypatch, name, url)
    engine = sa.create_engine(url)
    work = Workload(kind, seed=seed)
    work.setup(engine, events=20_000, pairs=6_000)
    sync_ok(name)
    assert work.churn(engine, 150_000, per_transaction=6) >= 150_000
    settle(kind, engine)
    tables = [{"table": t} for t in TABLES]
    proc = start(name, url, tables, env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")}, cdc=True, retries=0)
    return name, engine, proc


@pytest.mark.parametrize("kind", DATABASES)
def test_run_killed_mid_catch_up_then_normal_sync_is_exact(kind: str, request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name, engine, proc = _catch_up_started(kind, request, monkeypatch, "killed", seed=2)
    output = _kill_after(proc, ": applied ")
    applied = [line for line in output if ": applied " in line]
    assert applied, "".join(output)[-2000:]
    # the killed run applied some pages, not all: the warehouse is behind the source
    with pytest.raises(AssertionError):
        assert_exact(engine, name)
    sync_ok(name)
    assert_exact(engine, name)
    engine.dispose()


def test_truncate_and_added_column(db: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    kind, url = db
    name = source_name("ddl")
    set_secret(monkeypatch, name, url)
    engine = sa.create_engine(url)
    work = Workload(kind, seed=3)
    work.setup(engine, events=2_000, pairs=900)
    sync_ok(name)
    execute(engine, ["UPDATE events SET note = 'before truncate' WHERE id < 100", "TRUNCATE TABLE pairs"])
    settle(kind, engine)
    meta = sync_ok(name)
    assert meta["pairs"]["truncated"] is True
    assert warehouse_rows(name, "pairs", ["a"]) == []
    assert_exact(engine, name)

    execute(engine, ["TRUNCATE TABLE pairs"])
    execute(engine, [work.insert_pairs(300)])  # after the truncate: these must be there
    execute(engine, ["ALTER TABLE events ADD COLUMN extra varchar(40)"])
    execute(engine, ["UPDATE events SET extra = concat('x', id) WHERE mod(id, 7) = 0",
                     "UPDATE events SET extra = 'later' WHERE mod(id, 11) = 0"])
    execute(engine, [work.insert_events(50)])
    settle(kind, engine)
    sync_ok(name)
    assert_exact(engine, name)
    assert len(warehouse_rows(name, "pairs", ["a"])) == 300
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        columns = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = 'events'",
            [name]).fetchall()]
    assert "extra" in columns
    assert warehouse_rows(name, "events", ["id", "extra"]) == source_rows(engine, "events", ["id", "extra"])
    engine.dispose()


def test_table_without_primary_key_fails_alone(db: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    kind, url = db
    name = source_name("nopk")
    set_secret(monkeypatch, name, url)
    engine = sa.create_engine(url)
    work = Workload(kind, seed=4)
    work.setup(engine, events=1_000, pairs=300)
    execute(engine, ["CREATE TABLE loose (id int, v text)", "INSERT INTO loose VALUES (1, 'a'), (2, 'b')"])
    tables = [{"table": "events"}, {"table": "loose"}]
    result = sync(name, tables)
    assert not result.success
    text = failure_text(result)
    assert "no primary key" in text and '"cdc": False' in text, text[:3000]
    meta = materialization_metadata(result)
    assert "events" in meta and "loose" not in meta
    assert_exact(engine, name, ["events"])
    # and the next run still follows the table with a key
    execute(engine, [work.statement() for _ in range(20)])
    settle(kind, engine)
    result = sync(name, tables)
    assert not result.success and "no primary key" in failure_text(result)
    assert_exact(engine, name, ["events"])
    engine.dispose()


def test_slot_dropped_behind_our_back_fails_and_loads_nothing(pg_db: str, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    name = source_name("slot")
    set_secret(monkeypatch, name, pg_db)
    engine = sa.create_engine(pg_db)
    work = Workload("postgres", seed=5)
    work.setup(engine, events=1_000, pairs=300)
    sync_ok(name)
    before = {t: warehouse_rows(name, t, TABLES[t][1]) for t in TABLES}
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        state_before = con.execute(f'SELECT * FROM "{name}"._oso_cdc_state ORDER BY scope').fetchall()
    work.churn(engine, 2_000)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_drop_replication_slot(:s)"), {"s": f"oso_{name}"})
        conn.commit()
    result = sync(name)
    assert not result.success
    text = failure_text(result)
    assert f"oso-sources drop-cdc {name}" in text, text[:3000]
    assert materialization_metadata(result) == {}
    assert {t: warehouse_rows(name, t, TABLES[t][1]) for t in TABLES} == before
    with duckdb.connect(str(warehouse()), read_only=True) as con:
        assert con.execute(f'SELECT * FROM "{name}"._oso_cdc_state ORDER BY scope').fetchall() == state_before
    # the slot stays gone: a failed sync never starts a new one that would skip the changes in between
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_replication_slots WHERE slot_name = :s"),
                            {"s": f"oso_{name}"}).scalar() == 0
    engine.dispose()


def test_added_column_with_default_reaches_unchanged_rows(db: tuple[str, str], monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """``ADD COLUMN ... DEFAULT`` gives every existing row the value without a row change in the log."""
    kind, url = db
    name = source_name("dflt")
    set_secret(monkeypatch, name, url)
    engine = sa.create_engine(url)
    work = Workload(kind, seed=6)
    work.setup(engine, events=500, pairs=30)
    sync_ok(name)
    execute(engine, ["ALTER TABLE events ADD COLUMN flag varchar(10) NOT NULL DEFAULT 'old'"])
    execute(engine, ["UPDATE events SET flag = 'new' WHERE id <= 10"])
    settle(kind, engine)
    sync_ok(name)
    assert_exact(engine, name)
    assert warehouse_rows(name, "events", ["id", "flag"]) == source_rows(engine, "events", ["id", "flag"])
    engine.dispose()


def _drop_other_connections(kind: str, engine: sa.Engine) -> int:
    """What a source restart does to a running sync: every other session of the database is cut off."""
    with engine.connect() as conn:
        if kind == "postgres":
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")).all())
        ids = conn.execute(sa.text(  # the sync's sessions: on this database, or reading the binlog
            "SELECT id FROM information_schema.processlist WHERE id <> connection_id() "
            "AND (db = database() OR command LIKE 'Binlog Dump%%')")).scalars().all()
        for session in ids:
            conn.exec_driver_sql(f"KILL {int(session)}")
        return len(ids)


@pytest.mark.parametrize("kind", DATABASES)
def test_connections_cut_mid_catch_up_then_next_sync_is_exact(kind: str, request: pytest.FixtureRequest,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The source going away mid-sync (its sessions terminated, as by a restart) fails that run; the next
    one re-applies what was not acknowledged, exactly."""
    name, engine, proc = _catch_up_started(kind, request, monkeypatch, "cut", seed=9)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if ": applied " in line:
            assert _drop_other_connections(kind, engine) >= 1
            break
    rest, _ = proc.communicate(timeout=300)
    output = "".join(lines) + rest
    if proc.returncode == 0:  # the cut came after the last read: nothing to recover, still exact
        assert_exact(engine, name)
    else:
        # one of our messages (a transient "Cannot reach ... the run may be retried"), not a bare driver error
        assert "Cannot reach" in output or f"Replicating source {name!r} failed" in output, output[-3000:]
    sync_ok(name)
    assert_exact(engine, name)
    engine.dispose()
