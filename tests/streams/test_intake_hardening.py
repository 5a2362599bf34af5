"""Intake refuses what must never reach the ledger, and no input makes it raise."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.intake import REQUEST_KINDS, Source, route
from tests.ledger_inputs import ASSETS, breaker, internal_transfer, observation, payout_result
from tests.record_auth import AUTH, signed
from topics import catalogue
from topics.codec import SingleObjectCodec

codec = SingleObjectCodec()
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def routed(topic: str, record: dict) -> list:
    value = codec.encode(topic, record)
    source = Source(topic, 3, 5, b"alice", value, signed(topic, b"alice", value))
    return route(source, codec, ASSETS, NOW, AUTH)


def reasons(outputs) -> list[str]:
    return [
        codec.decode(catalogue.DEAD_LETTERS, o.value)["reason"]
        for o in outputs
        if o.topic == catalogue.DEAD_LETTERS
    ]


@pytest.mark.parametrize(
    ("amount", "asset", "reason"),
    [
        ("0", "WEI", "invalid_amount"),  # a zero-value token transfer (address poisoning)
        ("0.0000001", "ETH", "amount_below_minimum"),  # dust below min_deposit
        ("0.5", "WEI", "invalid_amount"),  # finer than the asset's scale
        ("-3", "WEI", "invalid_amount"),
    ],
)
def test_observations_that_must_not_be_credited_are_dead_lettered(amount, asset, reason) -> None:
    outputs = routed(catalogue.CHAIN_OBSERVATIONS, observation("alice", amount, "0x1", asset))
    assert reasons(outputs) == [reason]
    assert not [o for o in outputs if o.topic == catalogue.LEDGER_COMMANDS]


def test_a_seen_observation_of_dust_is_refused_too_but_a_removal_passes() -> None:
    seen = observation("alice", "1", "0x1", status="SEEN")
    assert routed(catalogue.CHAIN_OBSERVATIONS, seen) == []
    removed = observation("alice", "0", "0x1", status="REMOVED")
    [command] = routed(catalogue.CHAIN_OBSERVATIONS, removed)
    assert command.topic == catalogue.LEDGER_COMMANDS


def test_an_observation_for_an_invalid_account_is_dead_lettered() -> None:
    for account in ("operator:WEI:assets", "alice\n", "~control:3"):
        outputs = routed(catalogue.CHAIN_OBSERVATIONS, observation(account, "5", "0x1"))
        assert reasons(outputs) == ["invalid_field"], account


def test_a_negative_network_fee_is_dead_lettered() -> None:
    outputs = routed(catalogue.PAYOUT_RESULTS, payout_result("alice", "po:a:w", "CONFIRMED", "-1"))
    assert reasons(outputs) == ["invalid_amount"]


def test_a_breaker_change_for_no_scope_is_dead_lettered() -> None:
    for scope in ("", "asset:NOPE", "Global", "asset:"):
        assert reasons(routed(catalogue.BREAKER_STATE, breaker("OPEN", scope))) == ["invalid_field"]
    [command] = routed(catalogue.BREAKER_STATE, breaker("OPEN", "asset:WEI"))
    assert command.partition == 3


def test_requests_with_hostile_fields_are_rejected_naming_the_field() -> None:
    request = {**internal_transfer("alice", "t1", "5", "bob"), "to_account_id": "clearing:WEI"}
    outputs = routed(catalogue.TRANSFER_REQUESTS, request)
    assert reasons(outputs) == ["invalid_field"]
    assert "to_account_id" in codec.decode(catalogue.DEAD_LETTERS, outputs[0].value)["error"]


topic = st.sampled_from(
    [*REQUEST_KINDS, catalogue.CHAIN_OBSERVATIONS, catalogue.PAYOUT_RESULTS]
    + [catalogue.TRANSFER_CREDITS, catalogue.BREAKER_STATE]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic, st.binary(max_size=300), st.integers(0, 2**40))
def test_no_bytes_make_intake_raise(name: str, value: bytes, offset: int) -> None:
    outputs = route(
        Source(name, 1, offset, b"k", value, signed(name, b"k", value)), codec, ASSETS, NOW, AUTH
    )
    assert all(o.topic in (catalogue.DEAD_LETTERS, catalogue.LEDGER_COMMANDS) for o in outputs)


amounts = st.decimals(min_value=Decimal("-1e19"), max_value=Decimal("1e19"), places=18)
texts = st.text(max_size=40) | st.sampled_from(["alice", "WEI", "ETH", "xUSD", "ethereum", "bank"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, texts, texts, amounts, st.sampled_from(["SEEN", "CONFIRMED", "REMOVED"]))
def test_no_observation_makes_intake_raise_or_credit_a_non_positive_amount(
    account, asset, chain, amount, status
) -> None:
    record = {**observation("alice", "1", "0x1"), "account_id": account, "asset": asset}
    record.update(chain=chain, amount=amount, status=status)
    for output in routed(catalogue.CHAIN_OBSERVATIONS, record):
        if output.topic == catalogue.LEDGER_COMMANDS and status == "CONFIRMED":
            assert amount > 0 and asset in ASSETS
