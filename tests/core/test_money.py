"""Exact money: amounts up to the wire's 38 digits stay exact in every thread."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from core.money import AmountError, parse_amount, quantize_exact

LARGE = Decimal("12345678901234567890.123456789012345678")  # 38 digits, 18 decimals


def test_a_large_amount_of_an_18_decimal_token_is_exact() -> None:
    assert quantize_exact(Decimal("12345678901.5"), 18) == Decimal("12345678901.5")
    assert quantize_exact(LARGE, 18) == LARGE
    with pytest.raises(AmountError):
        quantize_exact(LARGE * 10, 18)  # beyond the wire's range


def test_sums_of_large_amounts_are_exact_in_a_new_thread() -> None:
    sums = []
    worker = threading.Thread(target=lambda: sums.append(LARGE + LARGE + Decimal("1e-18")))
    worker.start()
    worker.join()
    assert sums == [Decimal("24691357802469135780.246913578024691357")]
    assert sums[0] - LARGE - LARGE == Decimal("1e-18")


@pytest.mark.parametrize(
    "text",
    [
        "1e400",  # InvalidOperation escaped the parser: a 500 on the API, an intake crash loop
        "1E42",
        "1e10000000",  # froze a worker while it was encoded
        "١٢٣",  # Arabic-Indic digits: Decimal() reads them
        "1_000",  # Decimal() reads digit separators
        "NaN",
        "Infinity",
        "+5",
        " 5",
        "5 ",
        "0x10",
        "",
        ".",
        "1.2.3",
        "1" * 21,  # more integer digits than the wire's 20
        "0." + "1" * 19,  # more decimals than the wire's 18
        "9" * 5000,
    ],
)
def test_the_one_amount_parser_refuses_what_is_not_a_plain_decimal(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)


@pytest.mark.parametrize(
    "value", [1.5, True, None, [1], {"a": 1}, Decimal("NaN"), Decimal("1e400"), 10**20]
)
def test_the_parser_refuses_other_kinds_and_values_beyond_the_wire(value) -> None:
    with pytest.raises(AmountError):
        parse_amount(value)


def test_negative_amounts_only_where_signed() -> None:
    with pytest.raises(AmountError, match="negative"):
        parse_amount("-1")
    assert parse_amount("-1.50", signed=True) == Decimal("-1.50")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.5", "0.5"), (".5", "0.5"), ("5.", "5"), ("1" * 20, "1" * 20), ("007", "7"), (42, "42")],
)
def test_plain_decimals_parse_exactly(text, value) -> None:
    assert parse_amount(text) == Decimal(value)


def test_quantize_refuses_values_beyond_the_wire_without_raising_decimal_errors() -> None:
    for value in (Decimal("1e400"), Decimal("-1e400"), Decimal("Infinity")):
        with pytest.raises(AmountError):
            quantize_exact(value, 18)
