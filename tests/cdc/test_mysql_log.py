"""The MySQL/MariaDB binlog reader against a real throw-away MariaDB with a ROW binlog (tests/cdc/servers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from oso_dagster.errors import SourceDatabaseError
from oso_dagster.run.cdc import mysql
from oso_dagster.run.cdc.changes import ChangePage

T1, T2, T3, OTHER = ("test", "t1"), ("test", "t2"), ("test", "t3"), ("test", "other")
TABLES = {T1: ["id"], T2: ["a", "b"], T3: ["id"]}


@pytest.fixture(scope="module")
def url(binlog_mariadb_url: str) -> str:
    return binlog_mariadb_url


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    run(engine, "CREATE TABLE t1 (id INT PRIMARY KEY, v TEXT)",
        "CREATE TABLE t2 (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
        "CREATE TABLE t3 (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
    yield engine
    engine.dispose()


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def read(url: str, start: dict, end: dict, max_changes: int = 50_000) -> list[ChangePage]:
    return list(mysql.pages(url, "src", start, end, TABLES, max_changes=max_changes))


def test_inserts_updates_deletes_and_key_changes(url: str, engine: sa.Engine) -> None:
    start = mysql.current_position(engine)
    run(engine, "INSERT INTO t1 VALUES (1, 'a'), (2, 'b'), (3, 'c')", "UPDATE t1 SET v = 'B' WHERE id = 2",
        "UPDATE t1 SET id = 30 WHERE id = 3", "DELETE FROM t1 WHERE id = 1", "INSERT INTO t2 VALUES (5, 'x', 1)",
        "UPDATE t2 SET v = 2", "INSERT INTO other VALUES (1)")
    end = mysql.current_position(engine)
    [page] = read(url, start, end)
    assert page.end == end
    assert page.tables[T1].keys == {("1",), ("2",), ("3",), ("30",)}
    assert page.tables[T2].keys == {("5", "x")}
    assert OTHER not in page.tables
    assert page.changes == 3 + 1 + 1 + 1 + 1 + 1
    assert not page.tables[T1].truncated


def test_pages_end_on_transactions(url: str, engine: sa.Engine) -> None:
    start, ends = mysql.current_position(engine), []
    transactional = sa.create_engine(url)
    for txn in range(3):
        with transactional.connect() as conn, conn.begin():
            for row in range(4):
                conn.exec_driver_sql(f"INSERT INTO t3 VALUES ({txn * 10 + row})")
        ends.append(mysql.current_position(engine))
    transactional.dispose()
    pages = read(url, start, ends[-1], max_changes=2)
    assert [page.changes for page in pages] == [4, 4, 4]
    assert [page.end for page in pages] == ends
    assert pages[1].tables[T3].keys == {(str(10 + row),) for row in range(4)}
    # a bigger page takes two whole transactions, never a part of one
    assert [page.changes for page in read(url, start, ends[-1], max_changes=5)] == [8, 4]


def test_truncate_is_flagged(url: str, engine: sa.Engine) -> None:
    start = mysql.current_position(engine)
    run(engine, "INSERT INTO t2 VALUES (7, 'y', 1)", "TRUNCATE TABLE `test`.`t1`", "truncate t2", "TRUNCATE other")
    [page] = read(url, start, mysql.current_position(engine))
    assert page.tables[T1].truncated and page.tables[T2].truncated
    assert page.tables[T2].keys == {("7", "y")}
    assert OTHER not in page.tables


def test_end_bounds_the_read_across_files(url: str, engine: sa.Engine) -> None:
    start = mysql.current_position(engine)
    assert read(url, start, start) == []  # no changes: no page
    run(engine, "INSERT INTO t3 VALUES (100)", "FLUSH BINARY LOGS", "INSERT INTO t3 VALUES (101)")
    end = mysql.current_position(engine)
    assert end["file"] != start["file"]
    run(engine, "INSERT INTO t3 VALUES (102)", "FLUSH BINARY LOGS", "INSERT INTO t3 VALUES (103)")
    [page] = read(url, start, end)
    assert page.tables[T3].keys == {("100",), ("101",)} and page.end == end


def test_settings_grants_and_expiry(url: str, engine: sa.Engine) -> None:
    mysql.check_binlog(engine, "src")
    assert mysql.prerequisites(engine, "src") == []
    assert mysql.expire_seconds(engine) is None  # MariaDB keeps binlogs forever by default
    run(engine, "SET GLOBAL binlog_row_image = 'MINIMAL'")
    try:
        with pytest.raises(SourceDatabaseError, match="SET GLOBAL binlog_row_image = 'FULL'"):
            mysql.check_binlog(engine, "src")
    finally:
        run(engine, "SET GLOBAL binlog_row_image = 'FULL'")
    run(engine, "CREATE USER 'reader'@'%%' IDENTIFIED BY 'secret-pw'", "GRANT SELECT ON test.* TO 'reader'@'%%'")
    reader_url = sa.engine.make_url(url).set(username="reader", password="secret-pw")
    reader = sa.create_engine(reader_url)
    try:
        problems = mysql.prerequisites(reader, "src")
    finally:
        reader.dispose()
    assert problems == [
        "User 'reader'@'%' lacks REPLICATION SLAVE, needed to read the binlog of source 'src': "
        "run `GRANT REPLICATION SLAVE ON *.* TO 'reader'@'%';` as an administrator.",
        "User 'reader'@'%' lacks BINLOG MONITOR, needed to read the binlog of source 'src': "
        "run `GRANT BINLOG MONITOR ON *.* TO 'reader'@'%';` as an administrator.",
    ]
    position = mysql.current_position(engine)
    with pytest.raises(SourceDatabaseError) as error:
        list(mysql.pages(reader_url.render_as_string(hide_password=False), "src", position, position, TABLES))
    assert "secret-pw" not in str(error.value) and "BINLOG MONITOR" in str(error.value)


def test_rows_without_column_names_are_a_clear_error(url: str, engine: sa.Engine) -> None:
    run(engine, "SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        start = mysql.current_position(engine)
        run(engine, "INSERT INTO t3 VALUES (300)")
        with pytest.raises(SourceDatabaseError, match="SET GLOBAL binlog_row_metadata = 'FULL'"):
            read(url, start, mysql.current_position(engine))
        assert "binlog_row_metadata is MINIMAL" in " ".join(mysql.prerequisites(engine, "src"))
    finally:
        run(engine, "SET GLOBAL binlog_row_metadata = 'FULL'")


def test_purged_start_file_is_a_clear_error(url: str, engine: sa.Engine) -> None:
    start = mysql.current_position(engine)
    run(engine, "INSERT INTO t3 VALUES (200)", "FLUSH BINARY LOGS")
    # MariaDB keeps a file until InnoDB's binlog checkpoint has passed it, a moment after the flush: retry
    for _ in range(100):
        run(engine, f"PURGE BINARY LOGS TO '{mysql.current_position(engine)['file']}'")
        with engine.connect() as conn:
            if start["file"] not in {row[0] for row in conn.exec_driver_sql("SHOW BINARY LOGS")}:
                break
        time.sleep(0.1)
    with pytest.raises(SourceDatabaseError) as error:
        read(url, start, mysql.current_position(engine))
    message = str(error.value)
    assert start["file"] in message and "'src'" in message
    assert "oso-sources drop-cdc src" in message and "lost" in message


def test_keys_are_read_exactly_past_columns_of_every_type(url: str, engine: sa.Engine) -> None:
    """Only key columns are decoded (run/cdc/binlog_keys.py): the others are skipped by their width, which must
    be right for every type before and between the keys, or the keys come out wrong."""
    run(engine, "CREATE TABLE wide (pre DECIMAL(30,7), name VARCHAR(300), k1 INT, t TIME(3), j JSON, "
        "b BIT(10), en ENUM('a','b'), st SET('x','y'), d DOUBLE, f FLOAT, ts TIMESTAMP(2) NULL, dt DATETIME(6), "
        "dd DATE, y YEAR, tiny TINYINT UNSIGNED, med MEDIUMINT, big BIGINT, body MEDIUMTEXT, bl BLOB, "
        "k2 VARCHAR(20), tail DECIMAL(5,0), PRIMARY KEY (k1, k2))")
    start = mysql.current_position(engine)
    run(engine, "INSERT INTO wide SELECT seq * 1.0000001, repeat('n', MOD(seq, 290)), seq, '12:00:00.123', "
        "json_object('a', seq), b'101', 'b', 'x,y', seq / 3, seq / 7, now(), now(6), curdate(), 2024, MOD(seq, 255), "
        "seq, seq * 1000000000, repeat('x', seq * 7), repeat('b', MOD(seq, 70)), concat('k', seq), NULL "
        "FROM seq_1_to_300",
        "UPDATE wide SET d = -d, body = NULL WHERE MOD(k1, 3) = 0",
        "UPDATE wide SET k1 = k1 + 1000 WHERE MOD(k1, 5) = 0",
        "DELETE FROM wide WHERE MOD(k1, 7) = 0")
    end = mysql.current_position(engine)
    pages = list(mysql.pages(url, "src", start, end, {("test", "wide"): ["k1", "k2"]}))
    keys = set().union(*(page.tables[("test", "wide")].keys for page in pages))
    moved = {(str(n + 1000), f"k{n}") for n in range(5, 301, 5)}
    assert keys == {(str(n), f"k{n}") for n in range(1, 301)} | moved
