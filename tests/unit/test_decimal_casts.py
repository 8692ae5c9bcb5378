"""connectorx reads every PostgreSQL numeric as decimal128(38, 10); replication casts batches to the declared type."""

from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa
from oso_dagster.replication import _cast_decimals, connectorx_decimal_types


def _table() -> sa.Table:
    return sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("big", sa.Numeric()),
    )


def test_only_bounded_numerics_get_a_decimal_type() -> None:
    assert connectorx_decimal_types(_table(), "postgresql") == {"amount": pa.decimal128(12, 2)}


def test_batches_are_cast_exactly() -> None:
    values = [Decimal("9999999999.99"), Decimal("-0.01"), None]
    batch = pa.table({"id": [1, 2, 3], "amount": pa.array(values, pa.decimal128(38, 10))})
    cast = _cast_decimals(batch, {"amount": pa.decimal128(12, 2)})
    assert cast.schema.field("amount").type == pa.decimal128(12, 2)
    assert cast.column("amount").to_pylist() == values
    assert cast.column("id").to_pylist() == [1, 2, 3]


def test_a_value_that_would_lose_digits_raises() -> None:
    batch = pa.table({"amount": pa.array([Decimal("1.005")], pa.decimal128(38, 10))})
    with pytest.raises(pa.ArrowInvalid):
        _cast_decimals(batch, {"amount": pa.decimal128(12, 2)})
