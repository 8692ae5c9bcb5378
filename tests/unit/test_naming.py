"""Warehouse names: transliteration first, then dlt's snake_case."""

from __future__ import annotations

import pytest
from oso_dagster.naming import check_source_name, staging_model_name, transliterate, warehouse_name


@pytest.mark.parametrize(
    ("source", "landed"),
    [
        ("Ürün", "urun"),
        ("Açıklama", "aciklama"),  # noqa: RUF001
        ("OrderItems", "order_items"),
        ("Order Items", "order_items"),
        ("straße", "strasse"),
        ("users", "users"),
        ("CustomerID", "customer_id"),
    ],
)
def test_warehouse_name(source: str, landed: str) -> None:
    assert warehouse_name(source) == landed


def test_transliterate_keeps_ascii_and_spells_out_the_rest() -> None:
    assert transliterate("plain_ascii") == "plain_ascii"
    assert transliterate("Ürün") == "Urun"
    assert transliterate("Ürün").isascii()


def test_source_names() -> None:
    assert check_source_name("sales_db") == "sales_db"
    for bad in ("Sales", "1db", "class", "with-dash", "", None):
        with pytest.raises(ValueError, match="cannot name a source"):
            check_source_name(bad)


def test_staging_model_name() -> None:
    assert staging_model_name("shop", "Ürün") == "stg_shop__urun"
