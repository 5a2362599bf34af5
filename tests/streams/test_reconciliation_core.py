"""Reconciliation decisions: every threshold boundary, duplicate notifications, matching."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from streams.reconciliation.core import (
    BankAccountRecord,
    Movement,
    apply_notification,
    deviation_pct,
    drift_per_check,
    match_statement,
    threshold_level,
)

D = Decimal
TOLERANCE = D("0.01")


@pytest.mark.parametrize(
    ("bank", "ledger", "level"),
    [
        ("0", "0", "OK"),
        ("10000", "10000", "OK"),
        ("10000", "9999", "OK"),  # 0.01% exactly
        ("10000", "9998.99", "MINOR"),  # 0.0101%
        ("10000", "9995", "MINOR"),  # 0.05% exactly
        ("10000", "9994.99", "SIGNIFICANT"),  # 0.0501%
        ("10000", "9950", "SIGNIFICANT"),  # 0.5% exactly
        ("10000", "9949.99", "CRITICAL"),  # 0.5001%
        ("100", "0", "CRITICAL"),
        ("10000", "10000.01", "OK"),  # ledger above bank within the rounding tolerance
        ("10000", "10000.02", "CRITICAL"),  # tokens not fully backed, though 0.0002%
        ("0", "0.02", "CRITICAL"),
        ("-100", "-100", "OK"),
    ],
)
def test_threshold_levels_at_every_boundary(bank: str, ledger: str, level: str) -> None:
    assert threshold_level(D(bank), D(ledger), TOLERANCE) == level


def test_deviation_is_exact() -> None:
    assert deviation_pct(D("10000"), D("9999")) == D("0.01")
    assert deviation_pct(D("0"), D("0")) == 0
    assert deviation_pct(D("3"), D("0")) == 100


def notification(message_id: str, *entries: tuple[str, str, str]) -> dict:
    return {
        "message_id": message_id,
        "account_id": "ACC",
        "created_at": datetime(2026, 11, 21, tzinfo=UTC),
        "entries": [
            {"entry_reference": ref, "credit_debit_indicator": cd, "amount": D(amount)}
            for ref, cd, amount in entries
        ],
    }


def test_a_duplicated_notification_changes_nothing() -> None:
    record = BankAccountRecord("ACC")
    first = notification("M1", ("R1", "CRDT", "100.00"), ("R2", "DBIT", "30.00"))
    assert apply_notification(record, first) == 2
    assert record.bank_balance == D("70.00")
    assert apply_notification(record, first) == 0
    # the same entry in another message (a bank resending) is not counted again either
    assert apply_notification(record, notification("M2", ("R1", "CRDT", "100.00"))) == 0
    assert record.bank_balance == D("70.00")
    restored = BankAccountRecord.decode(record.encode())
    assert restored == record
    assert apply_notification(restored, first) == 0


def test_drift_is_the_average_change_per_check() -> None:
    assert drift_per_check([]) == 0
    assert drift_per_check([D("0.001"), D("0.002"), D("0.004")]) == D("0.0015")


def entry(ref: str, cd: str, amount: str, e2e: str | None = None) -> dict:
    return {
        "entry_reference": ref,
        "end_to_end_id": e2e,
        "credit_debit_indicator": cd,
        "amount": D(amount),
    }


def movement(tx: str, ref: str, cd: str, amount: str, day: str = "2026-11-21") -> Movement:
    return Movement(tx, ref, cd, D(amount), day)


def test_statement_matching_finds_each_kind_of_difference() -> None:
    entries = [
        entry("R1", "CRDT", "100.00"),  # matched by reference
        entry("R2", "CRDT", "50.00", e2e="E2E-2"),  # matched by end-to-end id
        entry("R3", "CRDT", "70.00"),  # ledger has 75
        entry("R4", "DBIT", "20.00"),  # not in the ledger
        entry("R5", "CRDT", "10.00"),
        entry("R5", "CRDT", "10.00"),  # twice in the statement
        entry("R6", "CRDT", "5.00"),  # twice in the ledger
    ]
    movements = [
        movement("t1", "r1", "CRDT", "100.00"),
        movement("t2", "e2e-2", "CRDT", "50.00"),
        movement("t3", "R3", "CRDT", "75.00"),
        movement("t5", "R5", "CRDT", "10.00"),
        movement("t6a", "R6", "CRDT", "5.00"),
        movement("t6b", "R6", "CRDT", "5.00"),
        movement("t7", "R7", "DBIT", "9.00"),  # in the ledger today, not in the bank
        movement("t8", "R8", "CRDT", "1.00", day="2026-11-20"),  # another day: not counted
    ]
    outcome = match_statement(entries, movements, "2026-11-21")
    found = sorted((f.type, f.reference, f.source_system) for f in outcome.findings)
    assert found == [
        ("AMOUNT_MISMATCH", "R3", "bank"),
        ("DUPLICATE_TXN", "R5", "bank"),
        ("DUPLICATE_TXN", "R6", "ledger"),
        ("MISSING_TXN", "R4", "bank"),
        ("MISSING_TXN", "R7", "ledger"),
    ]
    assert outcome.matched == 4  # R1, R2 and both R5 lines
    mismatch = next(f for f in outcome.findings if f.type == "AMOUNT_MISMATCH")
    assert (mismatch.expected, mismatch.actual) == (D("70.00"), D("75.00"))
