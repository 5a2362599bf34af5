"""Suspense: a deposit no binding attributes is held, and credited once an operator assigns it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.fields import SUSPENSE_ACCOUNT, TREASURY_ACCOUNT
from core.observations import deposit_id
from core.reasons import Reason
from tests.ledger_inputs import ASSETS, T0, observation
from tests.streams.pure_ledger import PureLedger
from topics import catalogue

ZERO = Decimal(0)


def assignment(tx: str, account: str, amount: str, asset: str = "WEI", note: str = "ticket 7"):
    return {
        "deposit_id": deposit_id(ASSETS[asset], tx, 0),
        "asset": asset,
        "amount": Decimal(amount),
        "account_id": account,
        "note": note,
        "assigned_at": T0,
        "actor": "op:1(ops)",
    }


def held(ledger: PureLedger) -> PureLedger:
    outputs = ledger.submit("CHAIN_OBSERVATION", observation(SUSPENSE_ACCOUNT, "40", "0xs1"))
    alerts = ledger.of_topic(outputs, catalogue.ALERTS)
    assert [a["kind"] for a in alerts] == ["deposit.in_suspense"]
    return ledger


def test_a_deposit_nobody_was_bound_for_waits_in_suspense_and_credits_no_user():
    ledger = held(PureLedger())
    assert ledger.ledger_total("operator:WEI:suspense") == Decimal(-40)
    assert ledger.ledger_total("operator:WEI:assets") == Decimal(40)
    assert all(r.balance("WEI") == ZERO for r in ledger.records.values())
    # the same confirmation again changes nothing
    ledger.submit("CHAIN_OBSERVATION", observation(SUSPENSE_ACCOUNT, "40", "0xs1"))
    assert ledger.ledger_total("operator:WEI:suspense") == Decimal(-40)


def test_an_assignment_credits_the_account_once():
    ledger = held(PureLedger())
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xs1", "alice", "40"))
    assert ledger.balance("alice") == Decimal(40)
    assert ledger.ledger_total("operator:WEI:suspense") == ZERO
    assert ledger.ledger_total("clearing:WEI") == ZERO
    repeat = assignment("0xs1", "alice", "40")
    repeat["assigned_at"] = T0 + timedelta(minutes=5)  # sent again later: the same decision
    ledger.submit("DEPOSIT_ASSIGNMENT", repeat)
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xs1", "mallory", "40"))
    assert ledger.balance("alice") == Decimal(40)
    assert ledger.balance("mallory") == ZERO
    assert ledger.dead_letters == [Reason.CONFLICTING_DUPLICATE]


def test_an_assignment_must_name_what_suspense_holds():
    ledger = held(PureLedger())
    ledger.submit("CHAIN_OBSERVATION", observation("bob", "5", "0xb1"))  # bob's, not held
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xb1", "alice", "5"))
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xnone", "alice", "5"))
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xs1", "alice", "41"))
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xs1", "alice", "40", asset="USDT"))
    assert ledger.dead_letters == [Reason.NOT_FOUND, Reason.NOT_FOUND, Reason.INVALID_AMOUNT,
                                   Reason.INVALID_AMOUNT]  # fmt: skip
    assert ledger.balance("alice") == ZERO and ledger.balance("bob") == Decimal(5)
    # a refused assignment uses nothing up: the right one is applied
    ledger.submit("DEPOSIT_ASSIGNMENT", assignment("0xs1", "alice", "40"))
    assert ledger.balance("alice") == Decimal(40)


def test_no_client_request_can_name_the_suspense_account():
    ledger = held(PureLedger())
    withdrawal = {
        "request_id": "w1", "account_id": SUSPENSE_ACCOUNT, "asset": "WEI",
        "amount": Decimal(10), "destination_address": "0x" + "11" * 20, "created_at": T0,
    }  # fmt: skip
    outputs = ledger.submit("WITHDRAWAL_REQUEST", withdrawal)
    assert not ledger.of_topic(outputs, catalogue.PAYOUT_COMMANDS)
    assert ledger.ledger_total("operator:WEI:suspense") == Decimal(-40)


def test_a_transfer_into_a_hot_wallet_is_the_operators_capital_not_a_users():
    ledger = PureLedger()
    outputs = ledger.submit("CHAIN_OBSERVATION", observation(TREASURY_ACCOUNT, "70", "0xf1"))
    [entry] = ledger.of_topic(outputs, catalogue.LEDGER_ENTRIES)
    assert entry["kind"] == "wallet_funding"
    assert ledger.ledger_total("operator:WEI:assets") == Decimal(70)
    assert ledger.ledger_total("operator:WEI:capital") == Decimal(-70)
    assert ledger.balance(TREASURY_ACCOUNT) == ZERO  # nobody's balance: nothing to withdraw
    again = ledger.submit("CHAIN_OBSERVATION", observation(TREASURY_ACCOUNT, "70", "0xf1"))
    assert ledger.of_topic(again, catalogue.LEDGER_ENTRIES) == []  # once per deposit
