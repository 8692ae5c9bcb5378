"""Replication through Dagster against real SQLite, PostgreSQL and MariaDB: loads, re-runs, failures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from dlt.sources import incremental

from replication.helpers import (
    build,
    failure_text,
    materialization_metadata,
    query,
    rows_by_id,
    run,
    run_ok,
    set_secret,
)

pytestmark = pytest.mark.slow


def _schema() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    meta = sa.MetaData()
    events = sa.Table(
        "events",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("payload", sa.String(50)),
    )
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50)),
    )
    return meta, events, users


def _execute(url: str, *statements: sa.sql.Executable) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


TABLES = [{"table": "events", "incremental": incremental("seq")}, {"table": "users"}]


def test_full_load_then_incremental_merge_and_full_refresh(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, events, users = _schema()
    engine = sa.create_engine(source_url)
    meta.create_all(engine)
    engine.dispose()
    _execute(
        source_url,
        events.insert().values([{"id": i, "seq": i, "payload": f"p{i}"} for i in range(1, 4)]),
        users.insert().values([{"id": i, "name": f"u{i}"} for i in range(1, 6)]),
    )
    set_secret(monkeypatch, "src", source_url)

    clock = time.monotonic()
    first = run_ok("src", TABLES)
    wall = time.monotonic() - clock
    assert rows_by_id("src", "events") == {i: {"id": i, "seq": i, "payload": f"p{i}"} for i in range(1, 4)}
    assert set(rows_by_id("src", "users")) == {1, 2, 3, 4, 5}
    meta1 = materialization_metadata(first)
    assert meta1["events"]["rows_loaded"] == 3
    assert meta1["users"]["rows_loaded"] == 5
    for table in ("events", "users"):
        assert meta1[table]["backend"] in ("connectorx", "pyarrow")
        # the step's own measure, in seconds: inside the run that contains it (not ms, not since some epoch)
        assert 0 < meta1[table]["duration_s"] <= wall, (meta1[table]["duration_s"], wall)
    assert meta1["events"]["cursor_value"] == "3"

    _execute(
        source_url,
        events.insert().values(id=4, seq=4, payload="p4"),
        events.update().where(events.c.id == 2).values(seq=5, payload="changed"),
        users.insert().values(id=6, name="u6"),
        users.update().where(users.c.id == 1).values(name="renamed"),
        users.delete().where(users.c.id.in_([3, 4])),
    )
    second = run_ok("src", TABLES)
    landed = rows_by_id("src", "events")
    assert landed == {
        1: {"id": 1, "seq": 1, "payload": "p1"},
        2: {"id": 2, "seq": 5, "payload": "changed"},
        3: {"id": 3, "seq": 3, "payload": "p3"},
        4: {"id": 4, "seq": 4, "payload": "p4"},
    }
    assert query("select count(*), count(distinct id) from src.events") == [(4, 4)]
    assert rows_by_id("src", "users") == {
        1: {"id": 1, "name": "renamed"},
        2: {"id": 2, "name": "u2"},
        5: {"id": 5, "name": "u5"},
        6: {"id": 6, "name": "u6"},
    }
    meta2 = materialization_metadata(second)
    assert meta2["events"]["cursor_value"] == "5"
    assert meta2["users"]["rows_loaded"] == 4
    # rows at or past the cursor (3) are read: row 3 again (merged on its key, not duplicated), 4 and 2
    assert meta2["events"]["rows_loaded"] == 3
    # Dagster's standard keys on both load paths (events: dlt's merge; users: a full refresh), warehouse types
    for table in ("events", "users"):
        assert meta2[table]["dagster/row_count"] == 4, meta2[table]
        assert meta2[table]["dagster/table_name"] == f"duckdb.src.{table}"
        types = {c.name: c.type for c in meta2[table]["dagster/column_schema"].columns}
        held = query("select column_name, data_type from information_schema.columns "
                     f"where table_schema = 'src' and table_name = '{table}'")
        assert types == dict(held), (types, held)
        assert "jobs" not in meta2[table]  # dlt's load-job dump (local file paths) is not passed on
    assert meta2["events"]["summary"].startswith("incremental on 'seq': 3 rows in ")
    assert meta2["events"]["summary"].endswith(", cursor 3 → 5")
    assert meta2["users"]["summary"].startswith("full refresh: 4 rows in ")


def test_incremental_table_without_primary_key_names_table_and_option(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = sa.MetaData()
    sa.Table("audit_log", meta, sa.Column("seq", sa.Integer), sa.Column("what", sa.String(20)))
    engine = sa.create_engine(source_url)
    meta.create_all(engine)
    engine.dispose()
    set_secret(monkeypatch, "src", source_url)
    result = run("src", [{"table": "audit_log", "incremental": incremental("seq")}])
    assert not result.success
    text = failure_text(result)
    assert "audit_log" in text
    assert "primary_key" in text

    # the option it names makes the run work
    _execute(source_url, sa.text("INSERT INTO audit_log (seq, what) VALUES (1, 'a'), (2, 'b')"))
    run_ok("src", [{"table": "audit_log", "incremental": incremental("seq"), "primary_key": "seq"}])
    assert query("select seq, what from src.audit_log order by seq") == [(1, "a"), (2, "b")]


def test_missing_table_fails_with_its_name(source_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    meta, _, _ = _schema()
    engine = sa.create_engine(source_url)
    meta.create_all(engine)
    engine.dispose()
    set_secret(monkeypatch, "src", source_url)
    result = run("src", [{"table": "users"}, {"table": "no_such_table"}])
    assert not result.success
    text = failure_text(result)
    assert "no_such_table" in text


def test_mixed_case_and_non_ascii_names(source_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = sa.MetaData()
    mixed = sa.Table(
        "OrderItems",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("CustomerName", sa.String(40)),
    )
    product = sa.Table(
        "Ürün",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Fiyatı", sa.String(40)),  # noqa: RUF001
        sa.Column("Açıklama", sa.String(40)),  # noqa: RUF001
    )
    engine = sa.create_engine(source_url)
    meta.create_all(engine)
    engine.dispose()
    _execute(
        source_url,
        mixed.insert().values(id=1, CustomerName="Ada"),
        product.insert().values({"id": 7, "Fiyatı": "12,50 ₺", "Açıklama": "çay"}),  # noqa: RUF001
    )
    set_secret(monkeypatch, "src", source_url)
    run_ok("src", [{"table": "OrderItems"}, {"table": "Ürün", "incremental": incremental("id")}])
    assert rows_by_id("src", "order_items") == {1: {"id": 1, "customer_name": "Ada"}}
    assert rows_by_id("src", "urun") == {7: {"id": 7, "fiyati": "12,50 ₺", "aciklama": "çay"}}


def test_missing_secret_names_env_var_and_definitions_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # no secret set and nothing listening: building definitions must still work
    assets = build("nowhere", [{"table": "events", "incremental": incremental("time")}, {"table": "users"}])
    assert {k.path[-1] for k in assets.keys} == {"events", "users"}
    result = run("nowhere", [{"table": "users"}])
    assert not result.success
    assert "DAGSTER__NOWHERE__DB_CONNECTION_STRING" in failure_text(result)


def _assert_never_printed(password: str, text: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert text
    assert password not in text
    captured = capfd.readouterr()
    assert password not in captured.out + captured.err
    home = Path(os.environ["OSO_HOME"])
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), path


@pytest.mark.mariadb
def test_wrong_password_is_never_printed(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "Sup3r-Secret-Pw-4711"
    user = "oso_pw_test"
    run_sql_admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    with run_sql_admin.connect() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'the-right-one'"))
    try:
        url = sa.engine.make_url(mysql_url).set(username=user, password=password)
        set_secret(monkeypatch, "src", url.render_as_string(hide_password=False))
        result = run("src", [{"table": "users"}])
    finally:
        with run_sql_admin.connect() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        run_sql_admin.dispose()
    assert not result.success
    text = failure_text(result)
    assert "refused" in text or "Access denied" in text, text
    _assert_never_printed(password, text, capfd)


@pytest.mark.postgres
def test_password_in_url_is_not_printed_when_a_run_fails_later(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The login works (trust auth ignores the password): neither the dlt state of a good run nor a later
    failure (a missing table) may contain it."""
    password = "An0ther-Secret-Pw-99"
    url = sa.engine.make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    set_secret(monkeypatch, "src", url)
    meta, _, _ = _schema()
    engine = sa.create_engine(pg_url)
    meta.create_all(engine)
    engine.dispose()
    run_ok("src", [{"table": "users"}])
    assert (Path(os.environ["OSO_HOME"]) / "dlt_pipelines").is_dir()
    result = run("src", [{"table": "users"}, {"table": "missing_one"}])
    assert not result.success
    text = failure_text(result)
    assert "missing_one" in text
    _assert_never_printed(password, text, capfd)
