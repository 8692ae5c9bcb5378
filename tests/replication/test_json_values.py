"""JSON lands as the source's own JSON value on every reader and both load paths: never a struct inferred from
the rows (which would give ``{}`` the keys of its neighbours), JSON ``null`` kept apart from SQL ``NULL``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from conftest import run_sql

from replication.helpers import column_types, materialization_metadata, query, run_ok, set_secret

pytestmark = pytest.mark.slow

_DEEP: Any = "leaf"
for _ in range(15):  # 30 levels: MariaDB refuses documents nested deeper than 32
    _DEEP = {"d": [_DEEP]}
_LARGE = {f"key{i}": {"i": i, "s": "ü" * (i % 7), "l": list(range(i % 5))} for i in range(20_000)}

# documents (parsed), in row order; None is SQL NULL, the string "null" a JSON null
DOCS: list[Any] = [
    {},
    {"n": 1, "s": "ü", "nested": {"x": [1, 2, 3]}},
    {"n": None},
    {"other": True, "big": 12345678901234567890, "f": 2.5, "e": 1e300},
    [{"a": 1}, {"b": "x", "c": [True, None]}, [], 2, "s", None],
    1,
    "s",
    True,
    json.loads("null"),
    _DEEP,
    _LARGE,
]
SQL_NULL_ID = len(DOCS) + 1
JSON_NULL_ID = DOCS.index(None) + 1 if None in DOCS else None

COLUMN_TYPE = {"postgres": ("jsonb", "json"), "mariadb": ("json", "json"), "sqlite": ("JSON", "JSON")}
BACKENDS = {"postgres": ["auto", "pyarrow", "sqlalchemy", "connectorx"], "mariadb": ["pyarrow", "sqlalchemy"],
            "sqlite": ["pyarrow", "sqlalchemy"]}


def _literal(doc: Any) -> str:
    return "'" + json.dumps(doc, ensure_ascii=False).replace("'", "''") + "'"


def _create(url: str, kind: str) -> None:
    first, second = COLUMN_TYPE[kind]
    suffix = " DEFAULT CHARSET=utf8mb4" if kind == "mariadb" else ""
    statements = [f"CREATE TABLE docs (id INTEGER PRIMARY KEY, doc {first}, doc2 {second}){suffix}"]
    for i, doc in enumerate(DOCS, start=1):
        statements.append(f"INSERT INTO docs VALUES ({i}, {_literal(doc)}, {_literal(doc)})")
    statements.append(f"INSERT INTO docs VALUES ({SQL_NULL_ID}, NULL, NULL)")
    run_sql(url, *statements)


def _parsed(text: str) -> Any:
    """The document as data, numbers compared by value (jsonb prints 1e300 with all its digits)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _assert_landed_exactly(dataset: str) -> None:
    assert column_types(dataset, "docs")["doc"] == "JSON"
    assert column_types(dataset, "docs")["doc2"] == "JSON"
    rows = {row[0]: row[1:] for row in query(f'SELECT id, doc, doc2 FROM "{dataset}"."docs"')}
    assert sorted(rows) == list(range(1, SQL_NULL_ID + 1))
    for i, doc in enumerate(DOCS, start=1):
        for landed in rows[i]:
            assert landed is not None, f"row {i}: JSON {json.dumps(doc)[:80]} landed as SQL NULL"
            assert _parsed(landed) == _parsed(json.dumps(doc)), f"row {i}: landed {landed[:200]}, expected {doc}"
    assert rows[SQL_NULL_ID] == (None, None)
    # a JSON null stays a JSON value, told apart from SQL NULL in the warehouse itself
    nulls = query(f'SELECT id FROM "{dataset}"."docs" WHERE json_type(doc) = \'NULL\' ORDER BY id')
    assert nulls == [(DOCS.index(None) + 1,)]


@pytest.mark.parametrize("path", ["direct", "dlt"])
def test_json_lands_as_the_source_document(
    source_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    kind = request.node.callspec.params["source_url"]
    _create(source_url, kind)
    for backend in BACKENDS[kind]:
        name = f"{backend}_{path}"
        set_secret(monkeypatch, name, source_url)
        entry: dict[str, Any] = {"table": "docs", "backend": backend}
        if path == "dlt":
            entry["write_disposition"] = "append"
        meta = materialization_metadata(run_ok(name, [entry]))["docs"]
        assert meta["loader"] == ("dlt" if path == "dlt" or backend == "sqlalchemy" else "duckdb direct")
        if backend == "auto":  # JSON read as text needs no pyarrow: connectorx reads it
            assert meta["backend"] == "connectorx"
        _assert_landed_exactly(name)


@pytest.mark.postgres
def test_json_interval_and_infinity_survive_a_merge(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Incremental tables go through dlt's staging table and merge: the landed types and values are the same."""
    from dlt.sources import incremental

    run_sql(pg_url, "CREATE TABLE events (id int PRIMARY KEY, seq int NOT NULL, doc jsonb, iv interval, "
            "valid_to timestamp, ip inet)",
            "INSERT INTO events VALUES (1, 1, '{}', '1 mon -1 days', 'infinity', '10.1.0.1'), "
            "(2, 2, 'null', NULL, '2024-01-01', '::1/128')")
    set_secret(monkeypatch, "src", pg_url)
    tables = [{"table": "events", "incremental": incremental("seq")}]
    run_ok("src", tables)
    run_sql(pg_url, "UPDATE events SET seq = 3, doc = '{\"n\": null}', iv = '-838:59:59' WHERE id = 2",
            "INSERT INTO events VALUES (3, 4, '\"s\"', '00:00:00.000001', '-infinity', '10.0.0.0/8')")
    run_ok("src", tables)
    types = column_types("src", "events")
    assert (types["doc"], types["iv"], types["valid_to"], types["ip"]) == ("JSON", "INTERVAL", "TIMESTAMP", "VARCHAR")
    landed = query('SELECT id, doc, iv::VARCHAR, valid_to::VARCHAR, ip FROM src.events ORDER BY id')
    assert landed == [
        (1, "{}", "1 month -1 day", "infinity", "10.1.0.1"),
        (2, '{"n": null}', "-838:59:59", "2024-01-01 00:00:00", "::1"),
        (3, '"s"', "00:00:00.000001", "-infinity", "10.0.0.0/8"),
    ]
