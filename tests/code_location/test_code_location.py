"""Two generated packages (PostgreSQL and SQLite) installed: one code location with lineage, materialized for real."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from conftest import run_sql

from code_location.helpers import BIN, env_with, install, load_graph, materialize, scaffold

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def installed(tmp_path: Path, pg_url: str, sqlite_url: str) -> dict[str, object]:
    run_sql(
        pg_url,
        "CREATE TABLE events (id serial PRIMARY KEY, kind text NOT NULL, updated_at timestamp NOT NULL DEFAULT now())",
        "CREATE INDEX ON events (updated_at)",
        "INSERT INTO events (kind) SELECT 'k' || i FROM generate_series(1, 300) AS i",
        'CREATE TABLE "Accounts" ("AccountId" int PRIMARY KEY, "Display Name" text)',
        "INSERT INTO \"Accounts\" VALUES (1, 'a'), (2, 'b')",
    )
    run_sql(
        sqlite_url,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO users VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    )
    out = tmp_path / "out"
    site = tmp_path / "site"
    site.mkdir()
    install(scaffold("pgsrc", pg_url, out), site)
    install(scaffold("litesrc", sqlite_url, out), site)
    secrets = {"DAGSTER__PGSRC__DB_CONNECTION_STRING": pg_url, "DAGSTER__LITESRC__DB_CONNECTION_STRING": sqlite_url}
    return {"site": site, "secrets": secrets, "cwd": tmp_path}


def test_lineage_without_any_database_or_secret(installed: dict[str, object], oso_env: Path) -> None:
    env = env_with(installed["site"])  # no secrets at all: loading must not need them
    graph = load_graph(env, installed["cwd"])
    assert graph["stg_pgsrc__events"] == ["pgsrc/events"]
    assert graph["stg_pgsrc__accounts"] == ["pgsrc/accounts"]
    assert graph["stg_litesrc__users"] == ["litesrc/users"]
    assert graph["pgsrc/events"] == [] and graph["litesrc/users"] == []

    manifest = oso_env / "dbt" / "target" / "manifest.json"
    first = manifest.stat().st_mtime_ns
    load_graph(env, installed["cwd"])
    assert manifest.stat().st_mtime_ns == first, "a warm load re-parsed the dbt project"


def test_materialize_everything_replicates_then_builds(installed: dict[str, object], oso_env: Path) -> None:
    env = env_with(installed["site"], **installed["secrets"])
    result = materialize(env, installed["cwd"])
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    with duckdb.connect(str(oso_env / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM pgsrc.events").fetchone() == (300,)
        assert conn.execute("SELECT count(*) FROM staging.stg_pgsrc__events").fetchone() == (300,)
        assert conn.execute("SELECT display_name FROM staging.stg_pgsrc__accounts ORDER BY account_id").fetchall() == [
            ("a",), ("b",)
        ]
        assert conn.execute("SELECT count(*) FROM staging.stg_litesrc__users").fetchone() == (3,)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(installed: dict[str, object]) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", "oso_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env_with(installed["site"]), cwd=installed["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"dagster-webserver exited: {process.stderr.read().decode()[-3000:]}")
                time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not answer within 180 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_webserver_graphql_lists_assets_and_edges(webserver: str) -> None:
    query = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
    deadline = time.monotonic() + 120
    while True:  # the code location loads after the server answers
        request = urllib.request.Request(
            f"{webserver}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        nodes = json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]["assetNodes"]
        if nodes or time.monotonic() > deadline:
            break
        time.sleep(2)
    edges = {"/".join(n["assetKey"]["path"]): ["/".join(d["path"]) for d in n["dependencyKeys"]] for n in nodes}
    assert edges["stg_pgsrc__events"] == ["pgsrc/events"]
    assert edges["stg_litesrc__users"] == ["litesrc/users"]
    assert "pgsrc/accounts" in edges
