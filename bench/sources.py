"""The benchmark's source table ``bench_events`` (and a ``bench_events_slice`` copy of its first rows) in
PostgreSQL, MariaDB or SQLite, built once per size and reused while it still holds the rows.

Columns: ``id`` bigint primary key, ``user_id`` bigint, ``kind`` text/varchar, ``amount`` decimal(12,2),
``happened_at`` timestamp (timestamptz / datetime(6) / DATETIME text), ``note`` text with 10 % NULLs.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

TABLE = "bench_events"
COLUMNS = "id, user_id, kind, amount, happened_at, note"


@dataclass
class Source:
    kind: str  # postgres | mysql | sqlite
    url: str  # SQLAlchemy URL (what the user's secret holds)

    @property
    def parts(self) -> sa.engine.URL:
        return sa.engine.make_url(self.url)


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return -1
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def _create_database(admin_url: str, database: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if admin.dialect.name == "postgresql":
            found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first()
            if not found:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        else:
            conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{database}`"))
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def psql(url: str) -> list[str]:
    u = sa.engine.make_url(url)
    return ["psql", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
            "-d", u.database or "postgres", "-v", "ON_ERROR_STOP=1", "-q"]


def mariadb(url: str) -> list[str]:
    u = sa.engine.make_url(url)
    return ["mariadb", "-h", u.host or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root",
            *([f"-p{u.password}"] if u.password else []), u.database or ""]


def _fresh(url: str, rows: int, slice_rows: int) -> bool:
    return _count(url, TABLE) == rows and _count(url, f"{TABLE}_slice") == min(slice_rows, rows)


def prepare_postgres(admin_url: str, database: str, rows: int, slice_rows: int) -> Source:
    url = _create_database(admin_url, database)
    if not _fresh(url, rows, slice_rows):
        _say(f"creating PostgreSQL {database}.{TABLE} with {rows:,} rows ...")
        started = time.monotonic()
        sql = f"""
            DROP TABLE IF EXISTS {TABLE}, {TABLE}_slice;
            CREATE UNLOGGED TABLE {TABLE} (
                id bigint PRIMARY KEY, user_id bigint NOT NULL, kind text NOT NULL,
                amount numeric(12,2) NOT NULL, happened_at timestamptz NOT NULL, note text);
            INSERT INTO {TABLE}
            SELECT i, (i * 7919) % 100000, (ARRAY['view','click','buy','refund'])[1 + i % 4],
                   round(((i * 37) % 1000000) / 100.0, 2),
                   timestamptz '2020-01-01 00:00:00+00' + (i * interval '1 second'),
                   CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || md5(i::text) END
            FROM generate_series(1::bigint, {rows}::bigint) AS i;
            CREATE UNLOGGED TABLE {TABLE}_slice (LIKE {TABLE} INCLUDING ALL);
            INSERT INTO {TABLE}_slice SELECT * FROM {TABLE} WHERE id <= {min(slice_rows, rows)};
        """
        vacuum = ["-c", f"VACUUM ANALYZE {TABLE}", "-c", f"VACUUM ANALYZE {TABLE}_slice"]
        subprocess.run([*psql(url), "-c", sql, *vacuum], check=True)
        _say(f"  created in {time.monotonic() - started:.1f}s")
    return Source("postgres", url)


def prepare_mysql(admin_url: str, database: str, rows: int, slice_rows: int) -> Source:
    url = _create_database(admin_url, database)
    if not _fresh(url, rows, slice_rows):
        _say(f"creating MariaDB {database}.{TABLE} with {rows:,} rows ...")
        started = time.monotonic()
        sql = f"""
            DROP TABLE IF EXISTS {TABLE}, {TABLE}_slice;
            CREATE TABLE {TABLE} (
                id bigint PRIMARY KEY, user_id bigint NOT NULL, kind varchar(16) NOT NULL,
                amount decimal(12,2) NOT NULL, happened_at datetime(6) NOT NULL, note text);
            INSERT INTO {TABLE}
            SELECT seq, (seq * 7919) % 100000, ELT(1 + seq % 4, 'view', 'click', 'buy', 'refund'),
                   ROUND(((seq * 37) % 1000000) / 100.0, 2),
                   TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq SECOND,
                   IF(seq % 10 = 0, NULL, CONCAT('note ', MD5(seq)))
            FROM seq_1_to_{rows};
            CREATE TABLE {TABLE}_slice LIKE {TABLE};
            INSERT INTO {TABLE}_slice SELECT * FROM {TABLE} WHERE id <= {min(slice_rows, rows)};
            ANALYZE TABLE {TABLE};
        """
        subprocess.run([*mariadb(url), "-e", sql], check=True, stdout=subprocess.DEVNULL)
        _say(f"  created in {time.monotonic() - started:.1f}s")
    return Source("mysql", url)


def prepare_sqlite(path: Path, rows: int, slice_rows: int) -> Source:
    url = f"sqlite:///{path}"
    if path.exists() and _fresh(url, rows, slice_rows):
        return Source("sqlite", url)
    path.unlink(missing_ok=True)
    _say(f"creating SQLite {path} with {rows:,} rows ...")
    started = time.monotonic()
    conn = sqlite3.connect(path)
    for name in (TABLE, f"{TABLE}_slice"):  # CREATE TABLE AS would lose the declared types
        conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, kind TEXT NOT NULL, "
                     "amount DECIMAL(12,2) NOT NULL, happened_at DATETIME NOT NULL, note TEXT)")
    kinds = ("view", "click", "buy", "refund")
    conn.executemany(
        f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)",
        ((i, (i * 7919) % 100000, kinds[i % 4], round(((i * 37) % 1000000) / 100, 2),
          f"2020-01-{1 + (i // 86400) % 28:02d} {(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000000",
          None if i % 10 == 0 else f"note {i:032x}") for i in range(1, rows + 1)),
    )
    conn.execute(f"INSERT INTO {TABLE}_slice SELECT * FROM {TABLE} WHERE id <= {min(slice_rows, rows)}")
    conn.commit()
    conn.close()
    _say(f"  created in {time.monotonic() - started:.1f}s")
    return Source("sqlite", url)


def change_rows(source: Source, pct: float) -> int:
    """Touch ``pct`` % of the rows (every n-th id): a new amount and a cursor moved past every stored value."""
    every = max(1, round(100 / pct))
    engine = sa.create_engine(source.url)
    now = {"postgres": "now() + interval '1 day'", "mysql": "NOW(6) + INTERVAL 1 DAY",
           "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 day')"}[source.kind]
    with engine.begin() as conn:
        changed = conn.execute(sa.text(
            f"UPDATE {TABLE} SET amount = amount + 1, happened_at = {now} WHERE id % {every} = 0")).rowcount
    engine.dispose()
    return changed


def _say(message: str) -> None:
    print(message, flush=True)
