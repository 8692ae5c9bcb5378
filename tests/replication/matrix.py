"""A type matrix: columns with SQL literals and the exact Python values expected back from DuckDB."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Json:
    """Expect a JSON document: the landed text is parsed and compared as data."""

    value: Any


@dataclass(frozen=True)
class Interval:
    """Expect a duration: DuckDB's ``INTERVAL``, read back as its text (exact: months, days and microseconds
    apart); ``source`` is the database's own text, which lands where the warehouse keeps text (BigQuery)."""

    duckdb: str
    source: str


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    values: tuple[tuple[str, Any], ...]  # (SQL literal, expected Python value in DuckDB)


def create_statements(table: str, columns: list[Col], suffix: str = "") -> list[str]:
    """``CREATE TABLE`` plus one ``INSERT`` per row; shorter columns are padded with NULL."""
    ddl = ", ".join(f"{c.name} {c.ddl}" for c in columns)
    statements = [f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {ddl}){suffix}"]
    for i in range(row_count(columns)):
        literals = [c.values[i][0] if i < len(c.values) else "NULL" for c in columns]
        names = ", ".join(c.name for c in columns)
        statements.append(f"INSERT INTO {table} (id, {names}) VALUES ({i + 1}, {', '.join(literals)})")
    return statements


def row_count(columns: list[Col]) -> int:
    return max(len(c.values) for c in columns)


def expected_rows(columns: list[Col]) -> dict[int, dict[str, Any]]:
    return {
        i + 1: {c.name: c.values[i][1] if i < len(c.values) else None for c in columns}
        for i in range(row_count(columns))
    }


def same(landed: Any, expected: Any) -> bool:
    """Exact equality, with NaN equal to NaN, -0.0 distinct from 0.0, and types checked."""
    if isinstance(expected, Json):
        return landed is not None and json.loads(landed) == expected.value
    if isinstance(expected, Interval):
        return landed == expected.duckdb
    if expected is None or landed is None:
        return expected is None and landed is None
    if isinstance(expected, float):
        if not isinstance(landed, float):
            return False
        if math.isnan(expected):
            return math.isnan(landed)
        return landed == expected and math.copysign(1, landed) == math.copysign(1, expected)
    if type(expected) is not type(landed) and not (isinstance(expected, int) and type(landed) is int):
        return False
    return landed == expected


def mismatches(
    landed: dict[Any, dict[str, Any]], expected: dict[int, dict[str, Any]], equal: Any = None
) -> list[str]:
    """Every (row, column) whose landed value differs (by ``equal``, default :func:`same`), for the assertion."""
    equal = equal or same
    problems = []
    if set(landed) != set(expected):
        problems.append(f"ids differ: landed {sorted(landed)} expected {sorted(expected)}")
    for row_id, row in expected.items():
        got = landed.get(row_id, {})
        for column, value in row.items():
            if column not in got:
                problems.append(f"row {row_id} column {column}: missing (landed columns {sorted(got)})")
            elif not equal(got[column], value):
                problems.append(f"row {row_id} column {column}: landed {got[column]!r}, expected {value!r}")
    return problems
