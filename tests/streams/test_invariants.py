"""The invariants watch: what it flags, and that a violation trips the breaker."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from streams.ledger_watch import violations
from tests.helpers import produce, read_topic, values
from topics import catalogue


def test_a_healthy_ledger_has_no_violations() -> None:
    nets = {
        "operator:WEI:assets": Decimal(5),
        "user:a:WEI": Decimal(-4),
        "operator:WEI:fees": Decimal(-1),
    }
    assert violations(nets, {"WEI": Decimal(0)}) == []
    # a deposit nobody was bound for is owed too, to whom it is assigned
    held = {**nets, "operator:WEI:assets": Decimal(8), "operator:WEI:suspense": Decimal(-3)}
    assert violations(held, {"WEI": Decimal(0)}) == []
    lost = {**held, "operator:WEI:suspense": Decimal(-2), "operator:WEI:fees": Decimal(-2)}
    assert violations(lost, {}) == []  # balanced, and every unit accounted for
    # what the operator funded its hot wallet with is its capital, not a user's
    funded = {**nets, "operator:WEI:assets": Decimal(105), "operator:WEI:capital": Decimal(-100)}
    assert violations(funded, {"WEI": Decimal(0)}) == []
    elsewhere = {**nets, "operator:WEI:assets": Decimal(105), "operator:WEI:other": Decimal(-100)}
    assert any("operator assets 105" in v for v in violations(elsewhere, {}))


def test_each_kind_of_violation_is_found() -> None:
    unbalanced = {"operator:WEI:assets": Decimal(5), "user:a:WEI": Decimal(-4)}
    assert any("do not balance" in v for v in violations(unbalanced, {}))
    negative = {"operator:WEI:assets": Decimal(-1), "user:a:WEI": Decimal(1)}
    assert any("user:a:WEI is negative" in v for v in violations(negative, {}))
    below_floor = {
        "operator:WEI:assets": Decimal(5),
        "user:a:WEI": Decimal(-4),
        "operator:WEI:fees": Decimal(-1),
    }
    assert any("below its floor" in v for v in violations(below_floor, {"WEI": Decimal(2)}))


def test_a_violating_entry_raises_an_alert_and_trips_the_breaker(settings, start_worker) -> None:
    start_worker()
    bad = {
        "transaction_id": "forged:1",
        "account_id": "mallory",
        "kind": "deposit",
        "cause_id": "forged",
        "asset": "WEI",
        "postings": [
            {"ledger_account": "user:mallory:WEI", "direction": "CREDIT", "amount": Decimal(100)}
        ],
        "sequence": 1,
        "previous_hash": "0" * 64,
        "hash": "0" * 64,
        "created_at": datetime(2026, 11, 21, tzinfo=UTC),
    }
    produce(settings, catalogue.LEDGER_ENTRIES, "mallory", bad)
    alerts = values(read_topic(settings, catalogue.ALERTS, until_count=2))
    assert {alert["kind"] for alert in alerts} == {
        "invariant.violated",
        "circuit_breaker.activated",
    }
    messages = [alert["message"] for alert in alerts]
    assert any("WEI: postings do not balance" in m for m in messages), messages
    assert any("WEI: operator assets 0 != liabilities + fees 100" in m for m in messages), messages
    states = values(read_topic(settings, catalogue.BREAKER_STATE, until_count=8))
    assert {(s["scope"], s["state"], s["actor"]) for s in states} == {
        ("global", "OPEN", "invariants")
    }
