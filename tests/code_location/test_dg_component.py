"""docs/dg.md's walkthrough, run as printed: create a dg project, scaffold SqlSourceComponent, check, list, launch.

The first command (installing oso-dagster with the `dg` extra) is this test environment itself; every other line
of the page's shell blocks runs here, in order, and the YAML block is the one the page shows.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PAGE = ROOT / "docs" / "dg.md"
BLOCK = re.compile(r"^```(bash|yaml)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _walkthrough() -> tuple[list[str], str]:
    """The shell lines and the defs.yaml of the page's Walkthrough section."""
    section = PAGE.read_text(encoding="utf-8").split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = BLOCK.findall(section)
    lines = [line for kind, text in blocks if kind == "bash" for line in text.splitlines() if line.strip()]
    (yaml_text,) = [text for kind, text in blocks if kind == "yaml"]
    return lines, yaml_text


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    program = BIN / argv[0]
    assert program.is_file(), f"{argv[0]} is not installed next to this Python (the `dg` extra installs it)"
    done = subprocess.run([str(program), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_the_dg_walkthrough_runs_as_printed(tmp_path: Path, oso_env: Path) -> None:
    lines, yaml_text = _walkthrough()
    assert lines[0] == "pip install './oso-dagster[dg]'"  # this environment: oso-dagster with the dg extra
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cwd = tmp_path
    installed = False
    outputs: dict[str, str] = {}
    try:
        for line in lines[1:]:
            argv = shlex.split(line)
            if argv[0] == "cd":
                cwd = cwd / argv[1]
            elif argv[0] == "export":
                name, _, value = argv[1].partition("=")
                env[name] = value
                with sqlite3.connect(cwd / "shop.sqlite") as db:  # the page's `shop.sqlite`, made here
                    db.executescript(
                        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), updated_at TIMESTAMP "
                        "NOT NULL); INSERT INTO orders VALUES (1, 9.99, '2024-01-01 10:00:00'), "
                        "(2, 5.00, '2024-01-02 11:00:00');"
                        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                        "INSERT INTO customers VALUES (7, 'Zoë');")
            else:
                outputs[line] = _run(argv, cwd, env)
                installed = installed or argv[:2] == ["pip", "install"]
                if argv[:2] == ["dg", "scaffold"]:
                    defs_yaml = cwd / "src" / "analytics" / "defs" / "shop" / "defs.yaml"
                    scaffolded = defs_yaml.read_text()
                    assert "type: oso_dagster.SqlSourceComponent" in scaffolded and "name: shop" in scaffolded
                    defs_yaml.write_text(yaml_text)  # "Name the tables you want"
        listed = outputs["dg list defs"]
        assert "shop/orders" in listed and "shop/customers" in listed and "sync_shop" in listed
        assert "validated successfully" in outputs["dg check defs"]
        with duckdb.connect(str(oso_env / "warehouse.duckdb"), read_only=True) as warehouse:
            assert warehouse.sql("SELECT id, amount, updated_at::VARCHAR FROM shop.orders ORDER BY id").fetchall() == [
                (1, Decimal("9.99"), "2024-01-01 10:00:00"),
                (2, Decimal("5.00"), "2024-01-02 11:00:00"),
            ]
            assert warehouse.sql("SELECT id, name FROM shop.customers").fetchall() == [(7, "Zoë")]
    finally:
        if installed:
            subprocess.run([str(BIN / "pip"), "uninstall", "-y", "-q", "analytics"], check=False, capture_output=True)


@pytest.mark.slow
def test_scaffold_with_tables_then_a_broken_defs_yaml_is_reported_by_dg_check(tmp_path: Path) -> None:
    """The page's `--json-params` form lists tables up front; `dg check defs` names a bad key before any run."""
    (printed,) = re.findall(r"`(dg scaffold defs [^`]*--json-params[^`]*)`", PAGE.read_text(encoding="utf-8"))
    _run(["create-dagster", "project", "analytics", "--no-uv-sync"], tmp_path, dict(os.environ))
    project = tmp_path / "analytics"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(project / "src")}  # stands in for `pip install -e .`
    _run(shlex.split(printed), project, env)
    defs_yaml = project / "src" / "analytics" / "defs" / "shop" / "defs.yaml"
    scaffolded = defs_yaml.read_text()
    assert "- table: orders" in scaffolded and "- table: customers" in scaffolded
    defs_yaml.write_text(scaffolded.replace("- table: orders", "- table: orders\n      incremental: [1]"))
    done = subprocess.run([str(BIN / "dg"), "check", "defs"], cwd=project, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode != 0
    assert "'incremental' must be the cursor column's name" in done.stdout + done.stderr
