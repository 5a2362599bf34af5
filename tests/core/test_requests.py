"""Request validation: every rule gives a machine-readable reason and names its field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.assets import parse_assets
from core.requests import RequestError, build_request
from topics.codec import SingleObjectCodec

# the shipped configuration, with the USDT contract a deployment sets
TOKEN_CONTRACT = "0x00000000000000000000000000000000000000a2"
ASSETS = parse_assets(
    Path("core/assets.toml").read_text().replace('contract = ""', f'contract = "{TOKEN_CONTRACT}"')
)
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


def test_fees_round_up_to_the_asset_scale() -> None:
    usdt = ASSETS["USDT"]
    assert usdt.withdrawal_fee(Decimal("100")) == Decimal("1.100000")
    assert usdt.withdrawal_fee(Decimal("0.000001")) == Decimal("1.000001")


def test_a_request_stamped_in_the_future_is_refused() -> None:
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    data = {"account_id": "a", "asset": "ETH", "amount": "1", "tx_hash": "0x1", "created_at": later}
    with pytest.raises(RequestError) as refused:
        build_request("deposit", data, ASSETS)
    assert (refused.value.reason, refused.value.field) == ("invalid_field", "created_at")


def test_a_decoded_request_without_its_id_is_refused_not_given_one() -> None:
    from core.requests import revalidate

    data = {"request_id": "", "account_id": "a", "asset": "ETH", "amount": "1", "tx_hash": "0x1"}
    assert build_request("deposit", data, ASSETS)["request_id"].startswith("req-")
    with pytest.raises(RequestError) as refused:
        revalidate("deposit", data, ASSETS)
    assert refused.value.field == "request_id"


json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
plausible = {
    "account_id": st.sampled_from(["alice", "bob", "alice\n", "clearing:ETH", "operator", ""]),
    "to_account_id": st.sampled_from(["bob", "alice", "user:bob:ETH", ""]),
    "asset": st.sampled_from(["ETH", "USDT", "BTC", "xUSD", "DOGE", ""]),
    "destination_asset": st.sampled_from(["ETH", "USDT", "BTC", "xUSD"]),
    "amount": st.sampled_from(["1", "0", "-1", "1e400", "0.0000001", "١", "1_0", "5", "10.000001"]),
    "destination_address": st.sampled_from(
        [ETH_ADDRESS, ETH_ADDRESS.lower(), "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "0x" + "0" * 40]
    ),
    "created_at": st.sampled_from(["2026-11-21T00:00:00Z", "9999-12-31T23:59:59-23:59", "x"]),
    "kind": st.sampled_from(["INTERNAL", "CROSS_CHAIN", "REFUND"]),
}
request_body = (
    st.fixed_dictionaries(
        {}, optional={name: strategy | json_value for name, strategy in plausible.items()}
    )
    | json_value
)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["deposit", "withdrawal", "transfer"]), request_body)
def test_no_body_gets_past_validation_unless_it_is_valid(kind, data) -> None:
    try:
        record = build_request(kind, data, ASSETS)
    except RequestError as refused:
        assert refused.reason and refused.field and str(refused).startswith(refused.field)
        return
    asset = ASSETS[record["asset"]]
    assert record["amount"] > 0 and record["amount"] == record["amount"].quantize(
        Decimal(1).scaleb(-asset.decimals)
    )
    assert ":" not in record["account_id"] and "\n" not in record["account_id"]
    SingleObjectCodec().encode(f"{kind}-requests", record)  # always encodable
