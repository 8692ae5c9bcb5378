"""A Pagila-like scaffold replicated and staged for real: the partitioned parent lands once, views land and stage."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from code_location.helpers import env_with, install, materialize, scaffold
from conftest import run_sql

from .pagila import MONTHS, PAYMENTS_PER_MONTH, create_mariadb, create_postgres

pytestmark = pytest.mark.slow


def _warehouse(oso_env: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(oso_env / "warehouse.duckdb"), read_only=True)


@pytest.mark.postgres
def test_postgres_partitioned_parent_and_incremental_view(tmp_path: Path, pg_url: str, oso_env: Path) -> None:
    create_postgres(pg_url)
    package = scaffold("shop", pg_url, tmp_path / "out", "--include-views", "--exclude", "city_log",
                       "--primary-key", "v_actor=actor_id", "--incremental", "v_actor=last_update")
    site = tmp_path / "site"
    install(package, site)
    env = env_with(site, DAGSTER__SHOP__DB_CONNECTION_STRING=pg_url)
    result = materialize(env, tmp_path, "group:shop")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    payments = len(MONTHS) * PAYMENTS_PER_MONTH
    with _warehouse(oso_env) as conn:
        landed = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop'").fetchall()}
        assert not [t for t in landed if t.startswith("payment_p")], landed
        assert conn.execute("SELECT count(*), count(DISTINCT payment_id) FROM shop.payment").fetchone() == (
            payments, payments)
        assert conn.execute("SELECT count(*) FROM staging.stg_shop__payment").fetchone() == (payments,)
        assert conn.execute("SELECT count(*) FROM staging.stg_shop__v_actor").fetchone() == (3,)

    # the view is read incrementally on its cursor and merged on the key it was given
    run_sql(pg_url, "UPDATE actor SET first_name = 'NICHOLAS', last_update = now() + interval '1 day'"
                    " WHERE first_name = 'NICK'")
    again = materialize(env, tmp_path, "key:shop/v_actor")
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    with _warehouse(oso_env) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT first_name FROM shop.v_actor").fetchall()) == [
            "ED", "NICHOLAS", "PENELOPE"]


@pytest.mark.mariadb
def test_mariadb_view_replicates_and_stages(tmp_path: Path, mysql_url: str, oso_env: Path) -> None:
    create_mariadb(mysql_url)
    package = scaffold("rent", mysql_url, tmp_path / "out", "--table", "v_customer", "--table", "customer")
    site = tmp_path / "site"
    install(package, site)
    env = env_with(site, DAGSTER__RENT__DB_CONNECTION_STRING=mysql_url)
    result = materialize(env, tmp_path, "group:rent")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    with _warehouse(oso_env) as conn:
        assert conn.execute("SELECT name FROM staging.stg_rent__v_customer ORDER BY customer_id").fetchall() == [
            ("MARY",), ("PATRICIA",)]
        assert conn.execute("SELECT count(*) FROM staging.stg_rent__customer").fetchone() == (2,)
