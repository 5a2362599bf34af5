"""The field grammars every entry point shares: ids, times, dates and JSON documents."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core import fields
from core.fields import FieldError, load_json


@pytest.mark.parametrize(
    "value",
    [
        "alice\n",  # `$` matched before a trailing newline: a second account
        "operator:ETH:assets",  # looks like the engine's own ledger accounts
        "clearing:ETH",
        "user:alice:ETH",
        "operator",
        "Clearing",
        "suspense",  # the engine's own records: no client names them
        "Treasury",
        "~control:0",
        "a b",
        "",
        None,
        7,
        "é",
        "a" * 129,
    ],
)
def test_account_ids_that_could_alias_or_smuggle_are_refused(value) -> None:
    with pytest.raises(FieldError) as refused:
        fields.account_id(value)
    assert refused.value.field == "account_id"


@pytest.mark.parametrize("value", ["alice", "acc-0001", "a.b@c", "A" * 128, "user1"])
def test_ordinary_account_ids_pass(value) -> None:
    assert fields.account_id(value) == value


def test_request_ids_are_matched_whole() -> None:
    assert fields.request_id("order:123") == "order:123"
    for value in ("w1\n", "w 1", "", 5):
        with pytest.raises(FieldError):
            fields.request_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59.999999-23:59",  # encodes, then no reader can decode it
        "0001-01-01T00:00:00+23:59",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "yesterday",
        "2026-13-01T00:00:00",
        {"at": "now"},
        12345,
        "2026-01-01T00:00:00" + " " * 100,
    ],
)
def test_times_outside_the_accepted_range_or_grammar_are_refused(value) -> None:
    with pytest.raises(FieldError) as refused:
        fields.timestamp(value, "created_at")
    assert refused.value.field == "created_at"


def test_times_are_read_as_utc() -> None:
    assert fields.timestamp("2026-11-21T12:00:00+01:00", "t") == datetime(
        2026, 11, 21, 11, tzinfo=UTC
    )
    assert fields.timestamp("2026-11-21T12:00:00", "t").tzinfo is UTC


@pytest.mark.parametrize(
    "value", ["/tmp/x", "../../../../eth-keystore", "2026-02-30", "20260201", "2026-1-1", {}, None]
)
def test_dates_are_calendar_dates_or_refused(value) -> None:
    with pytest.raises(FieldError) as refused:
        fields.iso_date(value, "statement_date")
    assert refused.value.reason == "invalid_date"


def test_a_date_parses() -> None:
    assert fields.iso_date("2026-02-28", "d") == date(2026, 2, 28)


@pytest.mark.parametrize(
    "document",
    [
        b"1" * 5000,  # a 5,000-digit integer: ValueError, not JSONDecodeError (a 500)
        b"[" * 100_000,  # RecursionError (a 500)
        b"\xff\xfe{",  # not UTF-8
        b'{"a": 1',
        b"",
        b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
    ],
)
def test_hostile_json_is_one_clear_refusal(document: bytes) -> None:
    with pytest.raises(FieldError) as refused:
        load_json(document)
    assert (refused.value.reason, refused.value.field) == ("invalid_json", "json")


def test_json_numbers_are_exact_where_asked() -> None:
    assert load_json(b'{"amount": 1.10}', decimals=True) == {"amount": Decimal("1.10")}
    assert load_json(b'{"amount": 1.10}') == {"amount": 1.1}  # a float: the parser refuses it
    assert load_json('["[{"]') == ["[{"]  # brackets inside strings do not count
