"""The embedded-default demo behind ``nox -s demo``: a sample SQLite database replicated into DuckDB and staged.

``python -m oso_dagster.demo prepare`` makes the database and scaffolds ``oso-source-demo`` from it;
after the package is installed, ``python -m oso_dagster.demo run`` replicates and builds twice (the second
time after new and changed rows) and prints what happened. Everything lives in ``./oso-demo/``.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import click

SOURCE = "demo"
EVENTS = 40_000
USERS = 2_000
PRODUCTS = 150
KINDS = ("view", "click", "add_to_cart", "purchase", "refund")
COUNTRIES = ("BR", "DE", "IN", "JP", "NG", "US", "TR", "FR")


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "source.sqlite"

    @property
    def package(self) -> Path:
        return self.root / f"oso-source-{SOURCE}"

    @property
    def oso_home(self) -> Path:
        return self.root / "oso_home"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            OSO_HOME=str(self.oso_home),
            DAGSTER_HOME=str(self.dagster_home),
            DAGSTER__DEMO__DB_CONNECTION_STRING=self.url,
        )
        env.pop("OSO_DUCKDB_PATH", None)
        env.pop("OSO_DESTINATION", None)
        return env


def _say(started: float, message: str) -> None:
    click.echo(f"[{time.monotonic() - started:6.1f}s] {message}")


def create_database(path: Path, seed: int = 42) -> dict[str, int]:
    """A deterministic shop: users, products, and a stream of events with a time column."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, signed_up_at TIMESTAMP NOT NULL);
        CREATE TABLE products (id INTEGER PRIMARY KEY, "Product Name" TEXT NOT NULL, price DECIMAL(10, 2) NOT NULL);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            product_id INTEGER REFERENCES products(id),
            kind TEXT NOT NULL,
            amount DECIMAL(10, 2),
            updated_at TIMESTAMP NOT NULL
        );
        CREATE INDEX events_updated_at ON events (updated_at);
        """
    )
    start = datetime(2026, 1, 1)
    conn.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [
            (i, f"user {i}", rng.choice(COUNTRIES), (start + timedelta(minutes=rng.randrange(500_000))).isoformat(" "))
            for i in range(1, USERS + 1)
        ],
    )
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?)",
        [(i, f"product {i}", f"{rng.randrange(100, 50_000) / 100:.2f}") for i in range(1, PRODUCTS + 1)],
    )
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
        [_event(rng, i, start + timedelta(seconds=i * 60)) for i in range(1, EVENTS + 1)],
    )
    conn.commit()
    conn.close()
    return {"users": USERS, "products": PRODUCTS, "events": EVENTS}


def _event(rng: random.Random, event_id: int, at: datetime) -> tuple[object, ...]:
    kind = rng.choice(KINDS)
    amount = f"{rng.randrange(100, 50_000) / 100:.2f}" if kind in ("purchase", "refund") else None
    return (event_id, rng.randrange(1, USERS + 1), rng.randrange(1, PRODUCTS + 1), kind, amount, at.isoformat(" "))


def add_changes(path: Path, new_events: int = 2_500, seed: int = 7) -> None:
    """New events after the last cursor value, plus a change to an old event (picked up via its new time)."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    last_id, last_time = conn.execute("SELECT max(id), max(updated_at) FROM events").fetchone()
    base = datetime.fromisoformat(last_time)
    rows = [_event(rng, last_id + i, base + timedelta(seconds=i * 30)) for i in range(1, new_events + 1)]
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute(
        "UPDATE events SET kind = 'refund', amount = 9.99, updated_at = ? WHERE id = 1",
        ((base + timedelta(seconds=(new_events + 1) * 30)).isoformat(" "),),
    )
    conn.execute("UPDATE products SET price = price + 1 WHERE id <= 10")
    conn.commit()
    conn.close()


@click.group()
@click.option("--dir", "root", default="oso-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def main(ctx: click.Context, root: Path) -> None:
    """The oso-dagster demo (run it through `nox -s demo`)."""
    ctx.obj = DemoPaths(root.absolute())


@main.command()
@click.pass_obj
def prepare(paths: DemoPaths) -> None:
    """Create the sample SQLite database and scaffold oso-source-demo from it."""
    started = time.monotonic()
    paths.root.mkdir(parents=True, exist_ok=True)
    # a re-run starts clean: an old warehouse or run history would not match the new sample database
    for stale in (paths.oso_home, paths.dagster_home):
        shutil.rmtree(stale, ignore_errors=True)
    counts = create_database(paths.database)
    _say(started, f"sample database {paths.database}: " + ", ".join(f"{t} {n:,} rows" for t, n in counts.items()))
    command = [
        sys.executable, "-m", "oso_dagster.cli.new_source", SOURCE,
        "--database-url", paths.url, "--output-dir", str(paths.root), "--no-input", "--force",
    ]
    subprocess.run(command, check=True)
    _say(started, f"scaffolded {paths.package}")


@main.command()
@click.pass_obj
def run(paths: DemoPaths) -> None:
    """Replicate and stage twice (the second time after new and changed rows) and summarise."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    (paths.dagster_home / "dagster.yaml").touch()
    started = time.monotonic()
    summaries: list[tuple[str, float, dict[str, int]]] = []
    for label in ("first sync (full load)", "second sync (incremental)"):
        if summaries:
            add_changes(paths.database)
            _say(started, "added 2,500 events, changed 1 event and 10 product prices in the source")
        _say(started, f"{label}: replicating {SOURCE}/* and building staging models ...")
        run_started = time.monotonic()
        if not _materialize_all(paths, started):
            raise click.ClickException(f"{label} failed; the Dagster output is above.")
        summaries.append((label, time.monotonic() - run_started, _rows_loaded(paths)))
        _say(started, f"{label} done in {summaries[-1][1]:.1f}s")
    _print_summary(paths, summaries)


_PROGRESS = ("STEP_START", "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION", "STEP_SUCCESS", "STEP_FAILURE")


def _materialize_all(paths: DemoPaths, started: float) -> bool:
    """Run ``dagster asset materialize --select '*'``, echoing its progress lines; keep the rest for errors."""
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
               "-m", "oso_dagster.definitions", "--select", "*"]
    lines: list[str] = []
    with subprocess.Popen(command, env=paths.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            event = next((e for e in _PROGRESS if f" - {e} - " in line), None)
            if event:
                _say(started, "  " + line.split(f" - {event} - ", 1)[1].strip()[:150])
    if process.returncode != 0:
        click.echo("".join(lines[-80:]), err=True)
    return process.returncode == 0


def _rows_loaded(paths: DemoPaths) -> dict[str, int]:
    """rows_loaded of each table's latest materialization, read from Dagster's own run storage."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        out = {}
        for table in ("events", "products", "users"):
            event = instance.get_latest_materialization_event(AssetKey([SOURCE, table]))
            metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
            value = metadata.get("rows_loaded")
            out[table] = int(value.value) if value is not None and isinstance(value.value, int) else 0
        return out


def _print_summary(paths: DemoPaths, summaries: list[tuple[str, float, dict[str, int]]]) -> None:
    import duckdb

    warehouse = paths.oso_home / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        staged = {
            t: (conn.execute(f"SELECT count(*) FROM staging.stg_{SOURCE}__{t}").fetchone() or (0,))[0]
            for t in ("events", "products", "users")
        }
    click.echo("\nsync                        seconds  rows loaded (events / products / users)")
    for label, seconds, rows in summaries:
        click.echo(f"{label:<27} {seconds:7.1f}  {rows['events']:,} / {rows['products']:,} / {rows['users']:,}")
    click.echo(f"\nwarehouse {warehouse}: staging views " + ", ".join(f"stg_{SOURCE}__{t} {n:,} rows"
                                                                     for t, n in staged.items()))
    dagster = Path(sys.executable).parent / "dagster"
    click.echo(
        "\nOpen the Dagster UI on this result:\n"
        f"  OSO_HOME={paths.oso_home} DAGSTER_HOME={paths.dagster_home} "
        f"DAGSTER__DEMO__DB_CONNECTION_STRING={paths.url} {dagster} dev -m oso_dagster.definitions\n"
        "then browse http://127.0.0.1:3000/asset-groups"
    )


if __name__ == "__main__":
    main()
