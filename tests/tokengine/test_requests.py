"""Request validation: every rule gives a machine-readable reason and names its field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokengine.assets import load_assets
from tokengine.requests import RequestError, address_is_valid, build_request, iban_is_valid

ASSETS = load_assets(Path("tokengine/assets.toml"))
ETH_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"


def test_a_valid_withdrawal_is_exact() -> None:
    record = build_request(
        "withdrawal",
        {
            "account_id": "alice",
            "asset": "ETH",
            "amount": "0.5",
            "destination_address": ETH_ADDRESS,
        },
        ASSETS,
    )
    assert record["amount"] == Decimal("0.500000000000000000")
    assert record["request_id"].startswith("req-")


@pytest.mark.parametrize(
    ("kind", "data", "reason", "field"),
    [
        (
            "withdrawal",
            {"asset": "ETH", "amount": "1", "destination_address": ETH_ADDRESS},
            "missing_field",
            "account_id",
        ),
        (
            "withdrawal",
            {"account_id": "a", "asset": "DOGE", "amount": "1", "destination_address": ETH_ADDRESS},
            "unknown_asset",
            "asset",
        ),
        (
            "withdrawal",
            {"account_id": "a", "asset": "ETH", "amount": 1.5, "destination_address": ETH_ADDRESS},
            "invalid_amount",
            "amount",
        ),
        (
            "withdrawal",
            {
                "account_id": "a",
                "asset": "USDT",
                "amount": "10.0000001",
                "destination_address": ETH_ADDRESS,
            },
            "invalid_amount",
            "amount",
        ),
        (
            "withdrawal",
            {"account_id": "a", "asset": "ETH", "amount": "-1", "destination_address": ETH_ADDRESS},
            "invalid_amount",
            "amount",
        ),
        (
            "withdrawal",
            {
                "account_id": "a",
                "asset": "ETH",
                "amount": "0.0001",
                "destination_address": ETH_ADDRESS,
            },
            "amount_below_minimum",
            "amount",
        ),
        (
            "withdrawal",
            {"account_id": "a", "asset": "ETH", "amount": "1", "destination_address": "0x1234"},
            "invalid_address",
            "destination_address",
        ),
        (
            "withdrawal",
            {"account_id": "a", "asset": "BTC", "amount": "1", "destination_address": ETH_ADDRESS},
            "invalid_address",
            "destination_address",
        ),
        ("deposit", {"account_id": "a", "asset": "ETH", "amount": "1"}, "missing_field", "tx_hash"),
        (
            "deposit",
            {"account_id": "a b", "asset": "ETH", "amount": "1", "tx_hash": "0xab"},
            "invalid_field",
            "account_id",
        ),
        (
            "transfer",
            {"account_id": "a", "asset": "ETH", "amount": "1", "to_account_id": "a"},
            "invalid_field",
            "to_account_id",
        ),
        ("refund", {}, "unknown_kind", "kind"),
    ],
)
def test_invalid_requests_name_reason_and_field(kind, data, reason, field) -> None:
    with pytest.raises(RequestError) as caught:
        build_request(kind, data, ASSETS)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert str(caught.value).startswith(f"{field}:")


def test_addresses_per_chain() -> None:
    assert address_is_valid("ethereum", ETH_ADDRESS)
    assert not address_is_valid("ethereum", "0x52908400098527886E0F7030069857D2E4169EE")
    assert address_is_valid("bitcoin", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn")
    assert not address_is_valid("bitcoin", "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfX")
    assert iban_is_valid("AE070331234567890123456")
    assert iban_is_valid("GB33BUKB20201555555555")
    assert not iban_is_valid("GB33BUKB20201555555556")


def test_fees_round_up_to_the_asset_scale() -> None:
    usdt = ASSETS["USDT"]
    assert usdt.withdrawal_fee(Decimal("100")) == Decimal("1.100000")
    assert usdt.withdrawal_fee(Decimal("0.000001")) == Decimal("1.000001")
