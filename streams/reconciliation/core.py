"""Reconciliation decisions, as pure functions: levels, the bank-balance record, matching.

Owns the threshold levels (exact Decimal arithmetic, every boundary inclusive as specified),
what a camt.054 notification, an intraday balance or a camt.053 statement does to an
operator bank account's record, and how statement entries are matched against the
ledger's movements. No I/O: `streams.reconciliation` feeds events in their log order,
gives the ledger's figures, and publishes what these functions return.

deviation = |bank - ledger| / max(|bank|, |ledger|) * 100 (0 when both are 0)
- OK <= 0.01% < MINOR <= 0.05% < SIGNIFICANT <= 0.5% < CRITICAL;
- CRITICAL also whenever the ledger exceeds the bank by more than the asset's rounding
  tolerance (tokens not fully backed), whatever the percentage.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
HUNDRED = Decimal(100)
OK, MINOR, SIGNIFICANT, CRITICAL = "OK", "MINOR", "SIGNIFICANT", "CRITICAL"
LEVEL_CEILINGS_PCT = (
    (OK, Decimal("0.01")),
    (MINOR, Decimal("0.05")),
    (SIGNIFICANT, Decimal("0.5")),
)
ACTIONS = {
    OK: "none",
    MINOR: "discrepancy_logged",
    SIGNIFICANT: "payouts_suspended",  # the action (and the health field), not a refusal
    CRITICAL: "circuit_breaker_activated",
}
SEVERITIES = {MINOR: "LOW", SIGNIFICANT: "HIGH", CRITICAL: "CRITICAL"}
TREND_POINTS = 96  # a day of 15-minute intraday checks
REMEMBERED_ENTRIES = 200_000  # entry references kept for duplicate detection, per account
DEVIATION_PLACES = Decimal("0.000001")


def deviation_pct(bank: Decimal, ledger: Decimal) -> Decimal:
    largest = max(abs(bank), abs(ledger))
    if largest == 0:
        return ZERO
    return abs(bank - ledger) / largest * HUNDRED


def threshold_level(bank: Decimal, ledger: Decimal, rounding_tolerance: Decimal) -> str:
    if ledger - bank > rounding_tolerance:
        return CRITICAL  # tokens not fully backed
    deviation = deviation_pct(bank, ledger)
    for level, ceiling in LEVEL_CEILINGS_PCT:
        if deviation <= ceiling:
            return level
    return CRITICAL


@dataclass
class BankAccountRecord:
    """What reconciliation knows of one operator bank account (one Faust table record)."""

    account_id: str
    bank_balance: Decimal = ZERO
    balance_source: str = "none"
    balance_as_of_ms: int = 0
    applied_entries: dict[str, str] = field(default_factory=dict)  # entry ref -> message id
    level: str = OK
    snapshots: dict[str, str] = field(default_factory=dict)  # date -> statement message id
    checks: int = 0

    def encode(self) -> bytes:
        data = asdict(self)
        data["bank_balance"] = str(self.bank_balance)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> BankAccountRecord:
        data = json.loads(raw)
        data["bank_balance"] = Decimal(data["bank_balance"])
        return cls(**data)


@dataclass(frozen=True)
class Check:
    """One comparison: the reconciliation result's content."""

    check_id: str
    tier: str
    account_id: str
    asset: str
    ledger_balance: Decimal
    bank_balance: Decimal
    level: str

    @property
    def difference(self) -> Decimal:
        return self.bank_balance - self.ledger_balance

    @property
    def action(self) -> str:
        return ACTIONS[self.level]

    def result(self, checked_at) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "tier": self.tier,
            "account_id": self.account_id,
            "asset": self.asset,
            "ledger_balance": self.ledger_balance,
            "bank_balance": self.bank_balance,
            "difference": self.difference,
            "deviation_pct": deviation_pct(self.bank_balance, self.ledger_balance).quantize(
                DEVIATION_PLACES
            ),
            "level": self.level,
            "action": self.action,
            "checked_at": checked_at,
        }


def signed(entry: dict[str, Any]) -> Decimal:
    return entry["amount"] if entry["credit_debit_indicator"] == "CRDT" else -entry["amount"]


def apply_notification(record: BankAccountRecord, notification: dict[str, Any]) -> int:
    """Add the notification's entries not applied before; returns how many were new."""
    new = 0
    for entry in notification["entries"]:
        reference = entry["entry_reference"]
        if reference in record.applied_entries:
            continue
        record.applied_entries[reference] = notification["message_id"]
        record.bank_balance += signed(entry)
        new += 1
    while len(record.applied_entries) > REMEMBERED_ENTRIES:
        record.applied_entries.pop(next(iter(record.applied_entries)))
    if new:
        record.balance_source = "camt.054"
        record.balance_as_of_ms = int(notification["created_at"].timestamp() * 1000)
    return new


def apply_balance(record: BankAccountRecord, balance: dict[str, Any], source: str) -> None:
    """An authoritative figure (intraday API, statement close) replaces the running balance."""
    record.bank_balance = balance["balance"]
    record.balance_source = source
    record.balance_as_of_ms = int(balance["as_of"].timestamp() * 1000)


def drift_per_check(deviations: list[Decimal]) -> Decimal:
    """Average change of the deviation % between consecutive checks: a slow drift shows."""
    if len(deviations) < 2:
        return ZERO
    return ((deviations[-1] - deviations[0]) / (len(deviations) - 1)).quantize(DEVIATION_PLACES)


# -- end of day matching -----------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """A ledger movement of the operator's bank account (see `streams.ledger_view`)."""

    transaction_id: str
    reference: str
    credit_debit_indicator: str
    amount: Decimal
    day: str


@dataclass(frozen=True)
class Finding:
    type: str  # MISSING_TXN, DUPLICATE_TXN, AMOUNT_MISMATCH
    reference: str
    expected: Decimal | None  # what the bank says
    actual: Decimal | None  # what the ledger says
    source_system: str  # where the item was found: bank or ledger


@dataclass
class Matching:
    matched: int = 0
    findings: list[Finding] = field(default_factory=list)


def match_statement(
    entries: list[dict[str, Any]], movements: list[Movement], statement_date: str
) -> Matching:
    """Statement entries against ledger movements, by reference / end-to-end id and amount.

    A statement entry matches the ledger movements carrying its entry reference or its
    end-to-end id (case-insensitive): none is MISSING_TXN (bank side), more than one or
    a reference repeated in the statement is DUPLICATE_TXN, a different signed amount is
    AMOUNT_MISMATCH. Ledger movements of the statement date that no entry claimed are
    MISSING_TXN (ledger side).
    """
    by_reference: dict[str, list[Movement]] = {}
    for movement in movements:
        by_reference.setdefault(movement.reference.lower(), []).append(movement)
    outcome = Matching()
    claimed: set[str] = set()
    repeated = Counter(entry["entry_reference"] for entry in entries)
    for entry in entries:
        keys = [entry["entry_reference"].lower()]
        if entry.get("end_to_end_id"):
            keys.append(entry["end_to_end_id"].lower())
        found = {m.transaction_id: m for key in keys for m in by_reference.get(key, [])}
        reference = entry["entry_reference"]
        bank_amount = signed(entry)
        if repeated[reference] > 1:
            outcome.findings.append(Finding("DUPLICATE_TXN", reference, bank_amount, None, "bank"))
            repeated[reference] = 0  # report once
        if not found:
            outcome.findings.append(Finding("MISSING_TXN", reference, bank_amount, None, "bank"))
            continue
        claimed.update(found)
        if len(found) > 1:
            total = sum((_signed_movement(m) for m in found.values()), ZERO)
            outcome.findings.append(
                Finding("DUPLICATE_TXN", reference, bank_amount, total, "ledger")
            )
            continue
        ledger_amount = _signed_movement(next(iter(found.values())))
        if ledger_amount != bank_amount:
            outcome.findings.append(
                Finding("AMOUNT_MISMATCH", reference, bank_amount, ledger_amount, "bank")
            )
            continue
        outcome.matched += 1
    for movement in movements:
        if movement.day == statement_date and movement.transaction_id not in claimed:
            outcome.findings.append(
                Finding(
                    "MISSING_TXN",
                    movement.reference,
                    None,
                    _signed_movement(movement),
                    "ledger",
                )
            )
    return outcome


def _signed_movement(movement: Movement) -> Decimal:
    return movement.amount if movement.credit_debit_indicator == "CRDT" else -movement.amount
