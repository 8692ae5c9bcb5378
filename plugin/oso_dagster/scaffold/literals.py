"""Values made into literals of the generated files' languages (Python, YAML, TOML, SQL identifiers, JSON).

Everything a user or a source database supplies reaches the generated files only through these, so no
value is ever pasted into code or re-rendered as a template.
"""

from __future__ import annotations

import base64
import json
import re

import yaml

from oso_dagster.errors import TemplateError

# Identifiers that need quoting on DuckDB or BigQuery (their reserved words, plus a few SQL standard ones
# either may adopt). A warehouse name in this set is written ``{{ adapter.quote('name') }}`` in SQL.
RESERVED_WORDS = frozenset(
    {
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "assert_rows_modified",
        "asymmetric", "at", "between", "both", "by", "case", "cast", "check", "collate", "column",
        "constraint", "contains", "create", "cross", "cube", "current", "current_date", "current_time",
        "current_timestamp", "current_user", "default", "deferrable", "define", "desc", "describe",
        "distinct", "do", "else", "end", "enum", "escape", "except", "exclude", "exists", "extract",
        "false", "fetch", "following", "for", "foreign", "from", "full", "group", "grouping", "groups",
        "hash", "having", "if", "ignore", "in", "initially", "inner", "intersect", "interval", "into", "is",
        "join", "lambda", "lateral", "leading", "left", "like", "limit", "lookup", "merge", "natural",
        "new", "no", "not", "null", "nulls", "of", "offset", "on", "only", "or", "order", "outer", "over",
        "partition", "pivot", "pivot_longer", "pivot_wider", "placing", "preceding", "primary", "proto",
        "qualify", "range", "recursive", "references", "respect", "returning", "right", "rollup", "rows",
        "select", "set", "show", "some", "struct", "summarize", "symmetric", "table", "tablesample", "then",
        "to", "trailing", "treat", "true", "unbounded", "union", "unique", "unnest", "unpivot", "user",
        "using", "variadic", "when", "where", "window", "with", "within",
    }
)


SIMPLE_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def py_str(value: object) -> str:
    """A Python string literal for ``value``, double-quoted where possible (the style of the examples)."""
    text = str(value)
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        literal = '"' + literal[1:-1] + '"'
    return literal


def yaml_str(value: object) -> str:
    """A double-quoted YAML scalar for ``value`` (one line, any character)."""
    dumped = yaml.safe_dump(str(value), default_style='"', allow_unicode=True, width=1_000_000)
    return dumped.strip().removesuffix("...").strip()


def toml_str(value: object) -> str:
    """A TOML basic string for ``value`` (JSON's escapes are TOML's, except for DEL)."""
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def payload(value: object) -> str:
    """``value`` as base64 JSON: how answers reach the hooks, as data inside a plain string literal."""
    return base64.b64encode(json.dumps(value, ensure_ascii=False).encode("utf-8")).decode("ascii")


def safe_text(value: object) -> str:
    """``value`` fit for prose that dbt renders as Jinja (descriptions): braces and control characters go."""
    text = _CONTROL.sub(" ", str(value))
    return text.replace("{", "(").replace("}", ")").replace("`", "'").strip()


def sql_ident(name: str) -> str:
    """A warehouse identifier for dbt SQL: bare when safe, else quoted portably through the adapter."""
    if not SIMPLE_IDENTIFIER.match(name):
        raise TemplateError(f"{name!r} is not a warehouse name; expected one from naming.warehouse_name().")
    if name in RESERVED_WORDS:
        return "{{ adapter.quote('" + name + "') }}"
    return name


def needs_quoting(name: str) -> bool:
    return name in RESERVED_WORDS or not SIMPLE_IDENTIFIER.match(name)


def json_pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
