"""Pagila/Sakila-like source schemas: a monthly-partitioned payment table, an inheritance child, tables whose
``last_update`` an update trigger (PostgreSQL) or ``ON UPDATE CURRENT_TIMESTAMP`` (MariaDB) keeps current, views.
"""

from __future__ import annotations

from conftest import run_sql

MONTHS = [f"2022-{m:02d}" for m in range(1, 8)]
PAYMENTS_PER_MONTH = 3


def _next_month(month: str) -> str:
    year, number = map(int, month.split("-"))
    return f"{year + number // 12}-{number % 12 + 1:02d}"


def create_postgres(url: str) -> None:
    partitions = [
        f"CREATE TABLE payment_p{m.replace('-', '_')} PARTITION OF payment "
        f"FOR VALUES FROM ('{m}-01') TO ('{_next_month(m)}-01')" for m in MONTHS
    ]
    payments = [
        f"INSERT INTO payment (customer_id, amount, payment_date) SELECT i, i * 1.5, '{m}-10'::timestamptz "
        f"FROM generate_series(1, {PAYMENTS_PER_MONTH}) AS i" for m in MONTHS
    ]
    run_sql(
        url,
        # Pagila's trigger function, shared by every table
        "CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.last_update = CURRENT_TIMESTAMP; RETURN NEW; END $$",
        "CREATE TABLE actor (actor_id serial PRIMARY KEY, first_name text NOT NULL,"
        " last_update timestamp NOT NULL DEFAULT now())",
        "CREATE TRIGGER last_updated BEFORE UPDATE ON actor FOR EACH ROW EXECUTE PROCEDURE last_updated()",
        "INSERT INTO actor (first_name) VALUES ('PENELOPE'), ('NICK'), ('ED')",
        "CREATE TABLE payment (payment_id serial, customer_id int NOT NULL, amount numeric(5,2) NOT NULL,"
        " payment_date timestamptz NOT NULL, last_update timestamp NOT NULL DEFAULT now(),"
        " PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date)",
        *partitions,
        "CREATE TRIGGER last_updated BEFORE UPDATE ON payment FOR EACH ROW EXECUTE PROCEDURE last_updated()",
        *payments,
        # an inheritance child (the pre-10 way of partitioning)
        "CREATE TABLE city_log (id int PRIMARY KEY, note text)",
        "CREATE TABLE city_log_2020 () INHERITS (city_log)",
        # named like an update time, no trigger; an indexed insert time does not beat it
        "CREATE TABLE film (film_id int PRIMARY KEY, title text, modified timestamp NOT NULL,"
        " created_at timestamp NOT NULL)",
        "CREATE INDEX ON film (created_at)",
        # a column a trigger keeps current beats one merely named updated_at
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.\"Touched\" := now(); RETURN NEW;"
        " END $$",
        'CREATE TABLE store (store_id int PRIMARY KEY, updated_at timestamp NOT NULL, "Touched" timestamp NOT NULL)',
        "CREATE TRIGGER touch BEFORE UPDATE ON store FOR EACH ROW EXECUTE FUNCTION touch()",
        # nothing to go on
        "CREATE TABLE language (language_id int PRIMARY KEY, name text, changed_at timestamp)",
        "CREATE VIEW v_actor AS SELECT actor_id, first_name, last_update FROM actor",
    )


def create_mariadb(url: str) -> None:
    run_sql(
        url,
        "CREATE TABLE customer (customer_id int PRIMARY KEY, name varchar(40),"
        " last_update timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
        " created_at datetime NOT NULL, INDEX (created_at))",
        "INSERT INTO customer (customer_id, name, created_at) VALUES (1, 'MARY', NOW()), (2, 'PATRICIA', NOW())",
        # ON UPDATE beats a column merely named updated_at
        "CREATE TABLE rental (rental_id int PRIMARY KEY, stamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP"
        " ON UPDATE CURRENT_TIMESTAMP, updated_at datetime NOT NULL)",
        "CREATE VIEW v_customer AS SELECT customer_id, name, last_update FROM customer",
    )
