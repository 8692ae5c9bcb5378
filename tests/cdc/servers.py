"""Throw-away database servers with a change log, for the CDC tests and bench/cdc.py.

The PostgreSQL and MariaDB services on this machine run without what CDC needs (``wal_level=replica``, no
binlog), so these start their own instances in a temporary directory on a free port: PostgreSQL with
``initdb``/``pg_ctl`` as the ``postgres`` OS user and ``wal_level=logical``; MariaDB with
``mariadb-install-db`` and ``mariadbd --log-bin --binlog-format=ROW``. Both are stopped (and their files
removed) when the context exits. A missing binary raises :class:`ServerUnavailable` naming it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A server could not be started here; the message says which binary or step failed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    on_path = shutil.which(name)
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([on_path] if on_path else [])
    if not found:
        raise ServerUnavailable(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return str(found[-1])


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the ``postgres`` OS user."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def _wait(ready: callable, what: str, log: Path, seconds: float = 60) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise ServerUnavailable(f"{what} did not start within {seconds:.0f}s; its log ends:\n{tail}")


@contextlib.contextmanager
def logical_postgres(extra: dict[str, str] | None = None) -> Iterator[str]:
    """A PostgreSQL server with ``wal_level=logical``; yields the SQLAlchemy URL of its database ``test``
    (user ``postgres``, trust auth)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="oso-cdc-pg-"))
    data, log = base / "data", base / "server.log"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    run = lambda args: subprocess.run(_as_postgres(args), capture_output=True, text=True)  # noqa: E731
    done = run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    if done.returncode:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"initdb failed: {done.stderr[-1000:]}")
    settings = {"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
                "listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": f"'{base}'",
                # synchronous_commit stays on: logical decoding reads only flushed WAL, and tests expect a
                # committed change to be readable at once
                "fsync": "off", "full_page_writes": "off", **(extra or {})}
    with open(data / "postgresql.conf", "a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    started = run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"])
    try:
        if started.returncode:
            raise ServerUnavailable(f"pg_ctl start failed: {started.stderr[-500:]} {log.read_text()[-1500:]}")
        psql = _pg_bin("psql")
        run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE test"])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    finally:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def binlog_mariadb() -> Iterator[str]:
    """A MariaDB server writing a ROW binlog; yields the SQLAlchemy URL of its database ``test`` (root, no
    password)."""
    install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    admin = shutil.which("mariadb-admin") or shutil.which("mysqladmin")
    if install is None or not Path(server).exists() or admin is None:
        raise ServerUnavailable("MariaDB's mariadb-install-db/mariadbd/mariadb-admin are not installed "
                                "(apt-get install mariadb-server)")
    base = Path(tempfile.mkdtemp(prefix="oso-cdc-mariadb-"))
    data, log, sock = base / "data", base / "server.log", base / "mysqld.sock"
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    done = subprocess.run([install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
                           "--skip-test-db", *user], capture_output=True, text=True)
    if done.returncode:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"mariadb-install-db failed: {done.stderr[-1000:]}")
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={sock}", f"--pid-file={base / 'mysqld.pid'}", f"--log-error={log}", "--server-id=1",
         f"--log-bin={base / 'binlog'}", "--binlog-format=ROW", "--binlog-row-image=FULL",
         "--binlog-row-metadata=FULL", "--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", *user],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ping = [admin, f"--socket={sock}", "-uroot", "ping"]
    try:
        _wait(lambda: process.poll() is None and subprocess.run(ping, capture_output=True).returncode == 0,
              "mariadbd", log)
        subprocess.run([shutil.which("mariadb") or "mysql", f"--socket={sock}", "-uroot", "-e",
                        "CREATE DATABASE test"], check=True, capture_output=True)
        yield f"mysql+pymysql://root@127.0.0.1:{port}/test"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":  # a manual check: start both, print their URLs, stop them
    with logical_postgres() as pg, binlog_mariadb() as my:
        print(pg)
        print(my)
