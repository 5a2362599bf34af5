"""Confirmation levels: every boundary of the default tables, and stale prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connectors.confirmations import Price, confirmations_required
from core.assets import load_assets
from core.config import Settings

ASSETS = load_assets(Settings.from_env({}).assets_file)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def required(code: str, usd_value: str, age: timedelta = timedelta(0)) -> int:
    # price 1 USD per unit: the amount is the USD value
    return confirmations_required(
        ASSETS[code], Decimal(usd_value), Price(Decimal(1), NOW - age), NOW
    )


@pytest.mark.parametrize(
    ("usd", "confirmations"),
    [
        ("0", 0),
        ("19.99", 0),
        ("20", 1),
        ("49.99", 1),
        ("50", 2),
        ("199.99", 2),
        ("200", 3),
        ("499.99", 3),
        ("500", 4),
        ("999.99", 4),
        ("1000", 5),
        ("1999.99", 5),
        ("2000", 6),
        ("2999.99", 6),
        ("3000", 8),
        ("4999.99", 8),
        ("5000", 12),
        ("1000000", 12),
    ],
)
def test_eth_and_erc20_levels(usd: str, confirmations: int) -> None:
    assert required("ETH", usd) == confirmations
    assert required("USDT", usd) == confirmations


@pytest.mark.parametrize(
    ("usd", "confirmations"),
    [("0", 0), ("99.99", 0), ("100", 1), ("499.99", 1), ("500", 2), ("999.99", 2), ("1000", 3)],
)
def test_btc_levels(usd: str, confirmations: int) -> None:
    assert required("BTC", usd) == confirmations


def test_a_stale_or_missing_price_asks_for_the_maximum() -> None:
    assert required("ETH", "1", age=timedelta(minutes=10)) == 0
    assert required("ETH", "1", age=timedelta(minutes=10, seconds=1)) == 12
    assert confirmations_required(ASSETS["BTC"], Decimal("0.001"), None, NOW) == 3
    price = Price(Decimal("3000"), NOW)  # 0.01 ETH at 3000 USD is 30 USD
    assert confirmations_required(ASSETS["ETH"], Decimal("0.01"), price, NOW) == 1
