"""How source names become warehouse names: one function for dlt, dbt and the template alike.

dlt's ``snake_case`` convention drops non-ASCII letters (``ürün`` -> ``_r_n``). We transliterate
first (``ürün`` -> ``urun``), then apply dlt's rules, so table and column names stay readable.
This module is also a dlt naming convention: dlt finds the ``NamingConvention`` class by module path.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache

from dlt.common.normalizers.naming.snake_case import NamingConvention as _SnakeCase
from text_unidecode import unidecode

SOURCE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@lru_cache(maxsize=65536)
def transliterate(identifier: str) -> str:
    """ASCII spelling of ``identifier`` (``Ürün`` -> ``Urun``); ASCII input is returned unchanged."""
    if identifier.isascii():
        return identifier
    return unidecode(identifier)


class NamingConvention(_SnakeCase):
    """dlt's snake_case, after transliterating non-ASCII letters."""

    def normalize_identifier(self, identifier: str) -> str:
        return super().normalize_identifier(transliterate(identifier.strip()))


NAMING_MODULE = __name__
_DEFAULT = NamingConvention()


def warehouse_name(identifier: str) -> str:
    """The name a source table or column gets in the warehouse, e.g. ``"Order Items"`` -> ``"order_items"``."""
    return _DEFAULT.normalize_identifier(identifier)


def check_source_name(name: object) -> str:
    """Return ``name`` if it can name a source (a dataset, an asset key prefix, a Python package part)."""
    if not isinstance(name, str) or not SOURCE_NAME_RE.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} cannot name a source: use a lowercase Python identifier that starts with a letter "
            "and is not a keyword, e.g. 'mydb' or 'sales_db'."
        )
    return name


def staging_model_name(source_name: str, table: str) -> str:
    """dbt Labs' staging convention: ``stg_<source>__<table>``."""
    return f"stg_{source_name}__{warehouse_name(table)}"


def mode_label(cursor: str | None, *, markdown: bool = False) -> str:
    """How a table is loaded, in words: ``incremental on 'updated_at'`` or ``full refresh``.

    The one wording of the CLIs, the logs, pre-flight and the asset descriptions (``markdown`` quotes the
    column as code).
    """
    if not cursor:
        return "full refresh"
    return f"incremental on `{cursor}`" if markdown else f"incremental on {cursor!r}"


def quote_identifier(identifier: str) -> str:
    """A double-quoted SQL identifier (PostgreSQL, DuckDB, SQLite), embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'
