"""connectorx reads bounded PostgreSQL numerics as text; replication parses them into the declared decimal."""

from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa
from oso_dagster.errors import SourceValueError
from oso_dagster.run.table_reader import parse_decimals
from oso_dagster.type_mapping import connectorx_decimals, connectorx_reads_exactly, source_cast


def _table() -> sa.Table:
    return sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("wide", sa.Numeric(38, 30)),
        sa.Column("ratio", sa.Float),
        sa.Column("big", sa.Numeric()),
    )


def test_bounded_numerics_of_any_scale_are_read_as_text_and_parsed() -> None:
    table = _table()
    assert connectorx_decimals(table.columns, "postgresql") == {"amount": (12, 2), "wide": (38, 30)}
    assert connectorx_decimals(table.columns, "mysql") == {"amount": (12, 2), "wide": (38, 30)}  # as text too
    assert connectorx_decimals(table.columns, "sqlite") == {}
    assert connectorx_reads_exactly(table.columns, "postgresql")  # `big` is cast to text in the query


def test_negative_scale_lands_as_text() -> None:
    assert isinstance(source_cast(sa.Numeric(5, -2), "postgresql"), sa.Text)


def test_batches_are_parsed_exactly() -> None:
    values = ["9999999999.99", "-0.01", None, "0.00"]
    batch = pa.table({"id": [1, 2, 3, 4], "amount": pa.array(values, pa.string())})
    parsed = parse_decimals(batch, "public.t", {"amount": (12, 2)})
    assert parsed.schema.field("amount").type == pa.decimal128(12, 2)
    assert parsed.column("amount").to_pylist() == [Decimal(v) if v else None for v in values]
    assert parsed.column("id").to_pylist() == [1, 2, 3, 4]


def test_thirty_eight_digits_survive() -> None:
    text = "12345678.012345678901234567890123456789"
    parsed = parse_decimals(pa.table({"wide": [text]}), "public.t", {"wide": (38, 30)})
    assert parsed.column("wide").to_pylist() == [Decimal(text)]


@pytest.mark.parametrize("value", ["1.005", "NaN", "Infinity"])
def test_a_value_the_decimal_cannot_hold_fails_clearly(value: str) -> None:
    with pytest.raises(SourceValueError, match=r"Table 'public.t', column 'amount' \(numeric\(12,2\)\)"):
        parse_decimals(pa.table({"amount": [value]}), "public.t", {"amount": (12, 2)})
