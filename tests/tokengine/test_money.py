"""Exact money: amounts up to the wire's 38 digits stay exact in every thread."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from tokengine.money import AmountError, quantize_exact

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
