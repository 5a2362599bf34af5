"""The three tiers of reconciliation, and what each check concludes.

Tier 1 (a camt.054 notification: the bank balance moves by its entries, deduplicated by
entry reference; its fiat deposits are waited for, bounded, in the ledger), tier 2 (an
intraday balance), tier 3 (a camt.053 statement: a snapshot per account and date, its
entries matched against the ledger's movements, the safeguarding report). Each check
compares the bank balance with the whole ledger's `operator:<asset>:assets`
(`streams.ledger_view`), emits its result and a discrepancy below OK, and the breaker
change `core.breaker.reconciliation_change` calls for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from core import ids
from core.assets import Asset
from core.breaker import GLOBAL_SCOPE, asset_scope, reconciliation_change
from streams import metrics
from streams.ledger_view import LedgerView
from streams.reconciliation.core import (
    OK,
    SEVERITIES,
    BankAccountRecord,
    Check,
    apply_balance,
    apply_notification,
    match_statement,
    threshold_level,
)
from streams.reconciliation.report import write_safeguarding_report
from streams.reconciliation.state import ReconciliationView
from topics import catalogue
from topics.breaker import breaker_record

log = logging.getLogger(__name__)

COMPONENT = "reconciliation"
DEPOSIT_WAIT_S = 10.0  # how long a notification's fiat deposits may take to reach the ledger
TIERS = {
    catalogue.BANK_NOTIFICATIONS: "TIER1_REALTIME",
    catalogue.BANK_BALANCES: "TIER2_INTRADAY",
    catalogue.BANK_STATEMENTS: "TIER3_EOD",
}


class Outputs(Protocol):
    """What a check emits through (`streams.reconciliation.agent.Outputs`)."""

    now: Any

    def emit(self, topic: str, key: str, value: dict[str, Any]) -> None: ...

    def alert(self, kind: str, severity: str, account: str, message: str, **details) -> None: ...

    def breaker(self, record: dict[str, Any]) -> None: ...


def discrepancy(
    discrepancy_id, account, kind, severity, expected, actual, difference, source, reference, now
) -> dict[str, Any]:
    return {
        "discrepancy_id": discrepancy_id,
        "account_id": account,
        "type": kind,
        "severity": severity,
        "expected": expected,
        "actual": actual,
        "difference": difference,
        "source_system": source,
        "reference": reference,
        "status": "OPEN",
        "detected_at": now,
    }


class Tiers:
    """The checks, with what they read: the whole ledger, the breaker states, the data dir."""

    def __init__(self, ledger: LedgerView, state: ReconciliationView, data_dir) -> None:
        self.ledger = ledger
        self.state = state
        self.data_dir = data_dir

    def ledger_balance(self, asset: Asset) -> Any:
        with self.ledger.lock:
            return self.ledger.nets.operator_balance(asset.code)

    async def tier1(
        self, record: BankAccountRecord, asset: Asset, notification: dict, outputs: Outputs
    ):
        apply_notification(record, notification)
        deposits = [
            entry["entry_reference"]
            for entry in notification["entries"]
            if entry.get("deposit_account_id") and entry["credit_debit_indicator"] == "CRDT"
        ]
        await self.wait_for_ledger_deposits(asset, deposits)
        check_id = ids.tier1_check(record.account_id, notification["message_id"])
        check = self.check(check_id, catalogue.BANK_NOTIFICATIONS, record, asset)
        self.conclude(record, asset, check, outputs)
        kind = "tier1.ok" if check.level == OK else "tier1.mismatch"
        outputs.alert(
            kind,
            "INFO" if check.level == OK else SEVERITIES[check.level],
            record.account_id,
            f"{asset.code}: bank {check.bank_balance}, "
            f"ledger {check.ledger_balance}: {check.level}",
            check_id=check.check_id,
            level=check.level,
        )

    def check(self, check_id: str, topic: str, record: BankAccountRecord, asset: Asset) -> Check:
        """The bank balance `record` holds against the whole ledger's figure, now."""
        ledger = self.ledger_balance(asset)
        level = threshold_level(record.bank_balance, ledger, asset.rounding_tolerance)
        return Check(
            check_id,
            TIERS[topic],
            record.account_id,
            asset.code,
            ledger,
            record.bank_balance,
            level,
        )

    async def wait_for_ledger_deposits(self, asset: Asset, references: list[str]) -> None:
        if not references:
            return
        wanted = {reference.lower() for reference in references}
        deadline = time.monotonic() + DEPOSIT_WAIT_S
        while time.monotonic() < deadline:
            with self.ledger.lock:
                missing = wanted - self.ledger.nets.bank_references[asset.code]
            if not missing:
                return
            await asyncio.sleep(0.01)
        log.warning(
            "%s: deposits %s not in the ledger after %ss", asset.code, missing, DEPOSIT_WAIT_S
        )

    def tier2(
        self, record: BankAccountRecord, asset: Asset, balance: dict, outputs: Outputs
    ) -> None:
        apply_balance(record, balance, balance["source"] or "intraday")
        as_of_ms = int(balance["as_of"].timestamp() * 1000)
        check_id = ids.tier2_check(record.account_id, as_of_ms)
        check = self.check(check_id, catalogue.BANK_BALANCES, record, asset)
        self.conclude(record, asset, check, outputs)

    def tier3(
        self, record: BankAccountRecord, asset: Asset, statement: dict, outputs: Outputs
    ) -> None:
        day = statement["statement_date"]
        replaces = record.snapshots.get(day)
        if replaces == statement["message_id"]:
            replaces = None  # the same statement again: same snapshot, same outputs
        apply_balance(
            record,
            {"balance": statement["closing_balance"], "as_of": statement["created_at"]},
            "camt.053",
        )
        record.snapshots[day] = statement["message_id"]
        check_id = ids.tier3_check(record.account_id, day, statement["message_id"])
        check = self.check(check_id, catalogue.BANK_STATEMENTS, record, asset)
        ledger = check.ledger_balance
        with self.ledger.lock:
            movements = list(self.ledger.nets.bank_movements[asset.code])
        matching = match_statement(statement["entries"], movements, day)
        for index, finding in enumerate(matching.findings):
            difference = None
            if finding.expected is not None or finding.actual is not None:
                difference = (finding.expected or 0) - (finding.actual or 0)
            outputs.emit(
                catalogue.DISCREPANCIES,
                record.account_id,
                discrepancy(
                    f"{check_id}:{finding.type}:{index}",
                    record.account_id,
                    finding.type,
                    "HIGH" if finding.type != "DUPLICATE_TXN" else "CRITICAL",
                    finding.expected,
                    finding.actual,
                    difference,
                    f"camt.053/{finding.source_system}",
                    finding.reference,
                    outputs.now,
                ),
            )
        report = write_safeguarding_report(
            self.data_dir, asset, statement, check, matching, outputs.now
        )
        snapshot = {
            "snapshot_id": ids.snapshot(record.account_id, day),
            "account_id": record.account_id,
            "asset": asset.code,
            "snapshot_date": day,
            "statement_message_id": statement["message_id"],
            "opening_balance": statement["opening_balance"],
            "closing_balance": statement["closing_balance"],
            "ledger_balance": ledger,
            "difference": check.difference,
            "level": check.level,
            "entries_matched": matching.matched,
            "entries_unmatched": len(matching.findings),
            "replaces": replaces,
            "report_path": str(report),
            "created_at": outputs.now,
        }
        outputs.emit(catalogue.EOD_SNAPSHOTS, record.account_id, snapshot)
        self.conclude(record, asset, check, outputs)
        outputs.alert(
            "eod.complete",
            "INFO" if check.level == OK and not matching.findings else "HIGH",
            record.account_id,
            f"{asset.code} {day}: {matching.matched} matched, {len(matching.findings)} findings, "
            f"closing {statement['closing_balance']} vs ledger {ledger}: {check.level}",
            check_id=check_id,
            report=str(report),
            replaces=replaces or "",
        )

    def conclude(
        self, record: BankAccountRecord, asset: Asset, check: Check, outputs: Outputs
    ) -> None:
        """Emit the check's result, its balance discrepancy and the breaker change it calls for."""
        record.level = check.level
        record.checks += 1
        outputs.emit(catalogue.RECONCILIATION_RESULTS, record.account_id, check.result(outputs.now))
        metrics.reconciliation_checks.labels(check.tier, check.level).inc()
        if check.level != OK:
            outputs.emit(
                catalogue.DISCREPANCIES,
                record.account_id,
                discrepancy(
                    f"{check.check_id}:BALANCE_MISMATCH",
                    record.account_id,
                    "BALANCE_MISMATCH",
                    SEVERITIES[check.level],
                    check.bank_balance,
                    check.ledger_balance,
                    check.difference,
                    check.tier,
                    check.check_id,
                    outputs.now,
                ),
            )
        with self.state.lock:
            asset_state = self.state.state.breaker_state(asset_scope(asset.code)) or {}
            global_state = self.state.state.breaker_state(GLOBAL_SCOPE) or {}
        change = reconciliation_change(
            check.level,
            asset.code,
            global_state.get("state"),
            asset_state.get("state"),
            asset_state.get("actor"),
            COMPONENT,
        )
        if change is not None:
            reason = (
                f"{check.tier} {check.check_id}: {check.level}, bank {check.bank_balance} "
                f"ledger {check.ledger_balance}"
            )
            outputs.breaker(
                breaker_record(change.scope, change.state, change.level, reason, COMPONENT)
            )
