"""Bank files as an attacker or a broken bank would send them: refused with a reason, never
a crash, a freeze, a path or a value the wire cannot carry."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.bank_events import check_bank_event
from core.camt import CamtError, notification_from_json, parse_camt
from core.fields import FieldError
from tests.connectors.test_camt import camt054
from tests.ledger_inputs import ASSETS
from tokengine.demo.scenario import camt053

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "camt"
USD_ACCOUNT = "GB33BUKB20201555555555"  # xUSD's bank account in the test assets


@pytest.mark.parametrize("amount", ["1e400", "1E42", "1e10000000", "١٠٠", "1_000", "NaN"])
def test_an_amount_that_is_not_a_plain_decimal_refuses_the_file(amount: str) -> None:
    with pytest.raises(CamtError) as refused:
        parse_camt(camt054("04", amount=amount))
    assert refused.value.reason == "invalid_amount"


@pytest.mark.parametrize("day", ["/tmp/x", "../../../../eth-keystore", "2026-02-30", "x" * 20])
def test_a_statement_date_that_is_not_a_date_refuses_the_statement(day: str) -> None:
    # the safeguarding report was written to reports_dir / statement_date
    statement = camt053("M-1", USD_ACCOUNT, day, Decimal(0), Decimal(5), [])
    with pytest.raises(CamtError) as refused:
        parse_camt(statement)
    assert refused.value.reason == "invalid_date"


def json_entry(**changes) -> dict:
    body = {
        "message_id": "N-1",
        "account_id": USD_ACCOUNT,
        "currency": "USD",
        "credit_debit_indicator": "CRDT",
        "amount": "10.00",
        "bank_reference": "BNK-1",
    }
    return {**body, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"booking_date": {"a": 1}}, "invalid_date"),  # answered 500
        ({"booking_date": "2026-02-30"}, "invalid_date"),
        ({"amount": "1e400"}, "invalid_amount"),
        ({"amount": 1e400}, "invalid_amount"),
        ({"amount": [1]}, "invalid_amount"),
        ({"amount": True}, "invalid_amount"),
        ({"message_id": ["x"]}, "missing_field"),
        ({"message_id": "x" * 500}, "invalid_field"),
        ({"currency": "usd"}, "invalid_field"),
        ({"credit_debit_indicator": 1}, "missing_field"),
        ({"remittance_info": {"x": 1}}, "invalid_field"),
        ({"end_to_end_id": 7}, "invalid_field"),
    ],
)
def test_a_json_entry_with_a_field_of_the_wrong_kind_names_it(changes, reason) -> None:
    with pytest.raises(CamtError) as refused:
        notification_from_json(json_entry(**changes))
    assert refused.value.reason == reason


def test_a_json_body_that_is_not_an_object_is_refused() -> None:
    for body in ([], "x", 5, None):
        with pytest.raises(CamtError):
            notification_from_json(body)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"currency": "JPY"}, "currency_mismatch"),  # JPY on a USD account was accepted
        ({"amount": "10.001"}, "invalid_amount"),  # more decimals than USD has
        ({"account_id": "GB94BARC10201530093459"}, "unknown_bank_account"),
    ],
)
def test_bank_content_is_checked_against_its_bank_account(changes, reason) -> None:
    notification = notification_from_json(json_entry(**changes))
    with pytest.raises(FieldError) as refused:
        check_bank_event(notification, ASSETS)
    assert refused.value.reason == reason


def test_a_valid_notification_passes_the_bank_checks() -> None:
    assert check_bank_event(notification_from_json(json_entry()), ASSETS).code == "xUSD"


def mutations(data: bytes, rng: random.Random) -> bytes:
    """One hostile edit of a real file: bytes flipped, cut, repeated or replaced."""
    if not data:
        return b"<"
    choice = rng.randrange(5)
    at = rng.randrange(len(data))
    if choice == 0:
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if choice == 1:
        return data[:at]
    if choice == 2:
        return data[:at] + data[at : at + rng.randrange(1, 200)] * rng.randrange(2, 20) + data[at:]
    if choice == 3:
        hostile = rng.choice([b"1e99999", b"-5", b"\x00", b"&lt;", b"9" * 60, b"2026-99-99"])
        end = data.find(b"<", at + 1)
        return data[:at] + hostile + data[end if end > 0 else at :]
    return data.replace(b"Ccy=", b'Ccy="" X=', 1)


FILES = sorted(SAMPLES.glob("*.xml"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.integers(0, 2**32), st.integers(1, 4))
def test_mutated_real_files_are_read_or_refused_with_a_reason(path, seed, edits) -> None:
    rng = random.Random(seed)
    data = path.read_bytes()
    for _ in range(edits):
        data = mutations(data, rng)
    try:
        message = parse_camt(data)
    except CamtError as error:
        assert error.reason and str(error)
        return
    for event in message.events:  # whatever is read is within the wire's range
        for entry in event["entries"]:
            assert 0 <= entry["amount"] < Decimal(10) ** 20
        if "statement_date" in event:
            assert len(event["statement_date"]) == 10


def test_a_document_with_its_own_entities_is_refused() -> None:
    data = (SAMPLES / "viafintech_054_valid_example.xml").read_bytes()
    head, body = data.split(b"?>", 1)
    with_entity = (
        head
        + b'?><!DOCTYPE Document [<!ENTITY r "REF">]>'
        + body.replace(b"<MsgId>", b"<MsgId>&r;", 1)
    )
    with pytest.raises(CamtError) as refused:  # raised XMLSchemaValidateError: a 500
        parse_camt(with_entity)
    assert refused.value.reason == "not_allowed"
