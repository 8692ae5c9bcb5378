"""`oso-sources drop-cdc`, `reset-table` and `check` of CDC sources, and `oso-new-source --cdc`, against a real
throw-away PostgreSQL with ``wal_level=logical`` (tests/cdc/servers.py) and a real DuckDB warehouse.

The source package is not installed: its module and a ``.dist-info`` holding its entry point are written into a
folder put on the CLI's PYTHONPATH, which is all entry-point discovery reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from oso_dagster.run import load_duckdb
from oso_dagster.run.cdc import postgres, state
from oso_dagster.settings import Settings
from oso_dagster.warehouse.destinations import dlt_environment, make_pipeline

BIN = Path(sys.executable).parent
PLUGIN = Path(__file__).resolve().parents[2] / "plugin"

ASSETS = """
from oso_dagster.factories.sql import sql_assets
from oso_dagster.utils.secrets import SecretReference
src = sql_assets("{name}", SecretReference(group_name="{name}", key="db"), {tables}, cdc=True)
"""


@pytest.fixture
def pg_url(logical_pg_url: str) -> str:
    """The session's PostgreSQL with ``wal_level=logical`` (tests/conftest.py): fails, never skips, without it."""
    return logical_pg_url


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def scalar(url: str, query: str, **params: str) -> object:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(query), params).scalar()
    engine.dispose()
    return value


def write_source(site: Path, name: str, tables: str) -> None:
    """A source package as an installer would leave it: the module and its dist-info with the entry point."""
    module = site / f"oso_source_{name}"
    module.mkdir(parents=True)
    (module / "__init__.py").write_text("")
    (module / "assets.py").write_text(textwrap.dedent(ASSETS.format(name=name, tables=tables)))
    info = site / f"oso_source_{name}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: oso-source-{name}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[oso_dagster.sources]\n{name} = oso_source_{name}.assets\n")


def environment(site: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER__", "OSO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OSO_HOME=str(home), **extra)
    env.pop("DAGSTER_HOME", None)
    return env


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "oso-sources"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)


def warehouse_tables(home: Path, dataset: str) -> set[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                            [dataset]).fetchall()
    return {row[0] for row in rows}


def cdc_scopes(home: Path, dataset: str) -> set[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        return {row[0] for row in conn.execute(f'SELECT scope FROM "{dataset}"."_oso_cdc_state"').fetchall()}


def start_cdc(url: str, home: Path, name: str, tables: list[tuple[str, str]]) -> None:
    """What a first CDC sync leaves behind: the slot and publication, the position and snapshot marks."""
    engine = sa.create_engine(url)
    try:
        position, _ = postgres.prepare(engine, name, tables, resumed=False)
    finally:
        engine.dispose()
    settings = Settings.from_env({"OSO_HOME": str(home)})
    pipeline = make_pipeline(settings, name)
    with dlt_environment(settings):
        load_duckdb.ensure_dataset(pipeline)
        with pipeline.sql_client() as client, client.begin_transaction():
            state.ensure(client)
            state.save_position(client, position)
            for _, table in tables:
                state.mark_snapshotted(client, table, position)


def test_drop_cdc_removes_slot_publication_and_state(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE shop_events (id int PRIMARY KEY, v text)")
    site, home = tmp_path / "site", tmp_path / "home"
    write_source(site, "shop", '[{"table": "shop_events"}]')
    start_cdc(pg_url, home, "shop", [("public", "shop_events")])
    assert scalar(pg_url, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'oso_shop'") == 1
    assert "_oso_cdc_state" in warehouse_tables(home, "shop")
    env = environment(site, home, DAGSTER__SHOP__DB=pg_url)

    result = cli(env, tmp_path, "drop-cdc", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Dropped replication slot oso_shop." in result.stdout
    assert "Dropped publication oso_shop." in result.stdout
    assert "Forgot the CDC state in the warehouse (shop._oso_cdc_state)" in result.stdout
    assert "The next sync of shop copies every CDC table again" in result.stdout
    assert scalar(pg_url, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'oso_shop'") == 0
    assert scalar(pg_url, "SELECT count(*) FROM pg_publication WHERE pubname = 'oso_shop'") == 0
    assert "_oso_cdc_state" not in warehouse_tables(home, "shop")

    again = cli(env, tmp_path, "drop-cdc", "shop")  # nothing left: says so, still exit 0
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No replication slot or publication oso_shop" in again.stdout
    assert "held no CDC state" in again.stdout

    unknown = cli(env, tmp_path, "drop-cdc", "shopp")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr, unknown
    assert "no source named 'shopp' (installed: shop)" in unknown.stderr


def test_drop_cdc_of_a_mysql_source_only_forgets_the_warehouse_state(tmp_path: Path) -> None:
    site, home = tmp_path / "site", tmp_path / "home"
    write_source(site, "crm", '[{"table": "leads"}]')
    settings = Settings.from_env({"OSO_HOME": str(home)})
    pipeline = make_pipeline(settings, "crm")
    with dlt_environment(settings):
        load_duckdb.ensure_dataset(pipeline)
        with pipeline.sql_client() as client, client.begin_transaction():
            state.ensure(client)
            state.save_position(client, {"file": "binlog.000001", "pos": 4})
    # never connected to: MySQL keeps nothing per source on the server
    env = environment(site, home, DAGSTER__CRM__DB="mysql+pymysql://reader@127.0.0.1:1/crm")
    result = cli(env, tmp_path, "drop-cdc", "crm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "only the warehouse state is forgotten" in result.stdout
    assert "_oso_cdc_state" not in warehouse_tables(home, "crm")


def test_reset_table_forgets_the_cdc_snapshot_of_that_table(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE crm_a (id int PRIMARY KEY)", "CREATE TABLE crm_b (id int PRIMARY KEY)")
    site, home = tmp_path / "site", tmp_path / "home"
    write_source(site, "rst", '[{"table": "crm_a"}, {"table": "crm_b"}]')
    start_cdc(pg_url, home, "rst", [("public", "crm_a"), ("public", "crm_b")])
    env = environment(site, home, DAGSTER__RST__DB=pg_url)
    try:
        result = cli(env, tmp_path, "reset-table", "rst", "crm_a")
        assert result.returncode == 0, result.stdout + result.stderr
        assert cdc_scopes(home, "rst") == {"", "crm_b"}  # the position and the other table's snapshot stay
    finally:
        cli(env, tmp_path, "drop-cdc", "rst")


def test_check_reports_missing_replication_and_a_table_without_key(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE chk_keyed (id int PRIMARY KEY, v text)", "CREATE TABLE chk_nokey (v text)",
            "CREATE ROLE oso_cdc_reader LOGIN", "GRANT SELECT ON chk_keyed, chk_nokey TO oso_cdc_reader")
    site, home = tmp_path / "site", tmp_path / "home"
    write_source(site, "chk", '[{"table": "chk_keyed"}, {"table": "chk_nokey"}]')
    reader = sa.engine.make_url(pg_url).set(username="oso_cdc_reader").render_as_string(hide_password=False)
    result = cli(environment(site, home, DAGSTER__CHK__DB=reader), tmp_path, "check", "chk")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "Traceback" not in result.stderr
    assert ("FAIL cdc: role oso_cdc_reader lacks the REPLICATION attribute: ALTER ROLE oso_cdc_reader "
            "REPLICATION;") in out
    assert "FAIL chk_nokey: CDC table without a primary key" in out
    assert 'add a primary key (ALTER TABLE chk_nokey ADD PRIMARY KEY (...)) or "cdc": False' in out
    assert "ok   chk_keyed: readable" in out

    run_sql(pg_url, "ALTER ROLE oso_cdc_reader REPLICATION")
    fixed = cli(environment(site, home, DAGSTER__CHK__DB=reader), tmp_path, "check", "chk")
    assert "ok   cdc: the server and the credential are ready for CDC" in fixed.stdout, fixed.stdout
    assert "lacks the REPLICATION attribute" not in fixed.stdout


def test_new_source_cdc_writes_cdc_true_and_update_keeps_it(tmp_path: Path, pg_url: str) -> None:
    run_sql(pg_url, "CREATE TABLE scaf_orders (id int PRIMARY KEY, updated_at timestamp NOT NULL)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}

    def new_source(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "oso-new-source"), *args, "--no-input"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)

    made = new_source("scaf", "--database-url", pg_url, "--table", "scaf_orders", "--cdc", "--output-dir",
                      str(tmp_path))
    assert made.returncode == 0, made.stdout + made.stderr
    assets = tmp_path / "oso-source-scaf" / "src" / "oso_source_scaf" / "assets.py"
    assert "    cdc=True,\n)" in assets.read_text()

    run_sql(pg_url, "CREATE TABLE scaf_more (id int PRIMARY KEY)")
    updated = new_source("--update", str(tmp_path / "oso-source-scaf"), "--database-url", pg_url, "--table",
                         "scaf_more")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    text = assets.read_text()
    assert "cdc=True" in text and "scaf_more" in text

    plain = new_source("plain", "--table", "t", "--output-dir", str(tmp_path))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "cdc" not in (tmp_path / "oso-source-plain" / "src" / "oso_source_plain" / "assets.py").read_text()
