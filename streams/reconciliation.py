"""Three-tier reconciliation: the Faust agent keyed by operator bank account.

Agent:  reconcile (bank-notifications = tier 1, bank-balances = tier 2, bank-statements =
        tier 3; all keyed by the bank account, so one record sees its account's events in
        order).
Table:  reconciliation (one `BankAccountRecord` per bank account: the bank-reported
        balance and the entry references already applied, in one record, so a redelivered
        camt.054 changes nothing).
Emits:  reconciliation-results, discrepancies, eod-snapshots, alerts, and breaker-state
        changes (SIGNIFICANT suspends the asset's payouts, CRITICAL opens the global
        breaker until an operator resets it). Outputs carry deterministic ids and are
        flushed before the record is written: a crash re-emits them, never loses them.

The ledger side of every comparison is what the operator should hold of the asset the
account backs: the net of `operator:<asset>:assets` over the whole ledger
(`streams.ledger_view`). A notification that carries fiat deposits waits (bounded) until
the ledger shows them, so a deposit in flight is not taken for a mismatch.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import EventT

from streams import metrics
from streams.app import app, assets, codec, serve_view, settings
from streams.ledger_view import ledger_nets, ledger_topic_view
from streams.outputs import OutputProducer
from streams.reconciliation_core import (
    CRITICAL,
    OK,
    SEVERITIES,
    SIGNIFICANT,
    TREND_POINTS,
    BankAccountRecord,
    Check,
    apply_balance,
    apply_notification,
    drift_per_check,
    match_statement,
    threshold_level,
)
from tokengine.assets import BANK_ACCOUNT, Asset
from tokengine.bank_events import check_bank_event
from tokengine.fields import FieldError, iso_date
from topics import catalogue
from topics.breaker import breaker_alert, breaker_record
from topics.codec import DecodeError
from topics.dead_letters import dead_letter_of_message
from topics.jsonable import jsonable
from topics.partitioning import partition_for

log = logging.getLogger(__name__)

COMPONENT = "reconciliation"
DEPOSIT_WAIT_S = 10.0  # how long a notification's fiat deposits may take to reach the ledger
GLOBAL_SCOPE = "global"
TIERS = {
    catalogue.BANK_NOTIFICATIONS: "TIER1_REALTIME",
    catalogue.BANK_BALANCES: "TIER2_INTRADAY",
    catalogue.BANK_STATEMENTS: "TIER3_EOD",
}


class BankRecordCodec(codecs.Codec):
    def _dumps(self, value: BankAccountRecord) -> bytes:
        return value.encode()

    def _loads(self, data: bytes) -> BankAccountRecord:
        return BankAccountRecord.decode(data)


codecs.register("bank_account_record", BankRecordCodec())


class BankAccountTable(faust.Table):
    """Records are placed by their key, like the bank topics' messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_serializer = "utf8"
        self.value_serializer = "bank_account_record"

    def partition_for_key(self, key: Any) -> int:
        return partition_for(key, catalogue.ACCOUNT_PARTITIONS)


bank_accounts: BankAccountTable = app.tables.add(
    BankAccountTable(
        app,
        name="reconciliation",
        default=None,
        partitions=catalogue.ACCOUNT_PARTITIONS,
        beacon=app.tables.beacon,
        help="One record per operator bank account: bank balance and applied entries.",
    )
)


# -- what the operator surface reads (whole-topic views, every worker) -------------------


class ReconciliationState:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}  # check id -> result (bounded below)
        self.latest: dict[str, dict[str, Any]] = {}  # bank account -> newest result
        self.discrepancies: dict[str, dict[str, Any]] = {}  # id -> newest version
        self.snapshots: dict[str, dict[str, Any]] = {}  # snapshot id -> newest
        self.breakers: dict[str, dict[str, Any]] = {}  # scope -> newest state
        self.trends: dict[str, list[Decimal]] = {}  # bank account -> tier-2 deviations %
        self.alarm_version = 0  # counts discrepancy and breaker changes (gauges follow it)

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.RECONCILIATION_RESULTS:
            self.results[value["check_id"]] = value
            if len(self.results) > 100_000:
                self.results.pop(next(iter(self.results)))
            self.latest[value["account_id"]] = value
            if value["tier"] == "TIER2_INTRADAY":
                trend = self.trends.setdefault(value["account_id"], [])
                trend.append(value["deviation_pct"])
                del trend[:-TREND_POINTS]
        elif topic == catalogue.DISCREPANCIES:
            self.discrepancies[value["discrepancy_id"]] = value
            self.alarm_version += 1
        elif topic == catalogue.EOD_SNAPSHOTS:
            self.snapshots[value["snapshot_id"]] = value
        elif topic == catalogue.BREAKER_STATE:
            self.breakers[value["scope"]] = value
            self.alarm_version += 1

    def drift(self, account_id: str) -> Decimal:
        return drift_per_check(self.trends.get(account_id, []))

    def breaker_state(self, scope: str) -> dict[str, Any] | None:
        return self.breakers.get(scope)


state = ReconciliationState()
state_view = serve_view(
    [
        catalogue.RECONCILIATION_RESULTS,
        catalogue.DISCREPANCIES,
        catalogue.EOD_SNAPSHOTS,
        catalogue.BREAKER_STATE,
    ],
    state.fold,
    "reconciliation-view",
    partitions={catalogue.BREAKER_STATE: 1},  # every change is on each partition
)


# -- the agent ---------------------------------------------------------------------------

bank_topic = app.topic(
    *(catalogue.spec(name).full_name(settings.topic_prefix) for name in TIERS),
    key_serializer="raw",
    value_serializer="raw",
    partitions=catalogue.ACCOUNT_PARTITIONS,
    internal=False,
)


class Outputs:
    """What one event emits, produced in order and flushed before the record is written."""

    def __init__(self, producer: OutputProducer) -> None:
        self.producer = producer
        self.now = datetime.now(UTC)

    def emit(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.producer.produce(topic, key, codec.encode(topic, value))

    def alert(self, kind: str, severity: str, account: str, message: str, **details) -> None:
        self.emit(
            catalogue.ALERTS,
            kind,
            {
                "alert_id": f"{kind}:{details.get('check_id', account)}",
                "kind": kind,
                "severity": severity,
                "account_id": account,
                "message": message,
                "details": {k: str(v) for k, v in details.items()},
                "raised_at": self.now,
            },
        )

    def breaker(self, record: dict[str, Any]) -> None:
        alert = breaker_alert(record)
        self.emit(catalogue.ALERTS, alert["kind"], alert)
        value = codec.encode(catalogue.BREAKER_STATE, record)
        for partition in range(catalogue.spec(catalogue.BREAKER_STATE).partitions):
            self.producer.produce(
                catalogue.BREAKER_STATE, record["scope"], value, partition=partition
            )


@app.agent(bank_topic)
async def reconcile(stream: faust.StreamT) -> None:
    producer = OutputProducer(linger_ms=0)  # one event at a time: latency over batching
    async for event in stream.events():
        outputs = Outputs(producer)
        try:
            record = await handle(event, outputs)
        except Exception as error:  # a defect shown by one event: keep it, go on
            log.exception("reconciliation: event at offset %s not handled", event.message.offset)
            topic = catalogue.short_name(event.message.topic, settings.topic_prefix)
            reason = f"{type(error).__name__}: {error}"
            dead_letter_event(event, topic, outputs, "internal_error", reason)
            record = None
        await producer.flush()
        if record is not None:
            bank_accounts[record.account_id] = record
        metrics.events_processed.labels(COMPONENT).inc()


async def handle(event: EventT, outputs: Outputs) -> BankAccountRecord | None:
    message = event.message
    topic = catalogue.short_name(message.topic, settings.topic_prefix)
    try:
        value = codec.decode(topic, message.value)
    except DecodeError as error:
        dead_letter_event(event, topic, outputs, error.reason, str(error))
        return None
    try:  # the connector's checks: a configured account, its currency, its scale, dates
        asset = check_bank_event(value, assets())
    except FieldError as error:
        dead_letter_event(event, topic, outputs, error.reason, str(error))
        return None
    record = bank_accounts.get(value["account_id"]) or BankAccountRecord(value["account_id"])
    if topic == catalogue.BANK_NOTIFICATIONS:
        await tier1(record, asset, value, outputs)
    elif topic == catalogue.BANK_BALANCES:
        tier2(record, asset, value, outputs)
    else:
        tier3(record, asset, value, outputs)
    return record


def dead_letter_event(event: EventT, topic: str, outputs: Outputs, reason: str, error: str):
    letter = dead_letter_of_message(event.message, topic, reason, error, COMPONENT)
    metrics.dead_letters.labels(COMPONENT, reason).inc()
    outputs.emit(catalogue.DEAD_LETTERS, topic, letter)


def ledger_balance(asset: Asset) -> Any:
    with ledger_topic_view.lock:
        return ledger_nets.operator_balance(asset.code)


async def tier1(record: BankAccountRecord, asset: Asset, notification: dict, outputs: Outputs):
    apply_notification(record, notification)
    deposits = [
        entry["entry_reference"]
        for entry in notification["entries"]
        if entry.get("deposit_account_id") and entry["credit_debit_indicator"] == "CRDT"
    ]
    await wait_for_ledger_deposits(asset, deposits)
    ledger = ledger_balance(asset)
    check = Check(
        f"tier1:{record.account_id}:{notification['message_id']}",
        TIERS[catalogue.BANK_NOTIFICATIONS],
        record.account_id,
        asset.code,
        ledger,
        record.bank_balance,
        threshold_level(record.bank_balance, ledger, asset.rounding_tolerance),
    )
    conclude(record, asset, check, outputs)
    kind = "tier1.ok" if check.level == OK else "tier1.mismatch"
    outputs.alert(
        kind,
        "INFO" if check.level == OK else SEVERITIES[check.level],
        record.account_id,
        f"{asset.code}: bank {check.bank_balance}, ledger {check.ledger_balance}: {check.level}",
        check_id=check.check_id,
        level=check.level,
    )


async def wait_for_ledger_deposits(asset: Asset, references: list[str]) -> None:
    if not references:
        return
    wanted = {reference.lower() for reference in references}
    deadline = time.monotonic() + DEPOSIT_WAIT_S
    while time.monotonic() < deadline:
        with ledger_topic_view.lock:
            missing = wanted - ledger_nets.bank_references[asset.code]
        if not missing:
            return
        await asyncio.sleep(0.01)
    log.warning("%s: deposits %s not in the ledger after %ss", asset.code, missing, DEPOSIT_WAIT_S)


def tier2(record: BankAccountRecord, asset: Asset, balance: dict, outputs: Outputs) -> None:
    apply_balance(record, balance, balance["source"] or "intraday")
    ledger = ledger_balance(asset)
    as_of_ms = int(balance["as_of"].timestamp() * 1000)
    check = Check(
        f"tier2:{record.account_id}:{as_of_ms}",
        TIERS[catalogue.BANK_BALANCES],
        record.account_id,
        asset.code,
        ledger,
        record.bank_balance,
        threshold_level(record.bank_balance, ledger, asset.rounding_tolerance),
    )
    conclude(record, asset, check, outputs)


def tier3(record: BankAccountRecord, asset: Asset, statement: dict, outputs: Outputs) -> None:
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
    ledger = ledger_balance(asset)
    check_id = f"tier3:{record.account_id}:{day}:{statement['message_id']}"
    check = Check(
        check_id,
        TIERS[catalogue.BANK_STATEMENTS],
        record.account_id,
        asset.code,
        ledger,
        record.bank_balance,
        threshold_level(record.bank_balance, ledger, asset.rounding_tolerance),
    )
    with ledger_topic_view.lock:
        movements = list(ledger_nets.bank_movements[asset.code])
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
    report = write_safeguarding_report(asset, statement, check, matching, outputs.now)
    snapshot = {
        "snapshot_id": f"{record.account_id}:{day}",
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
    conclude(record, asset, check, outputs)
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


def conclude(record: BankAccountRecord, asset: Asset, check: Check, outputs: Outputs) -> None:
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
    with state_view.lock:
        asset_state = state.breaker_state(f"asset:{asset.code}")
        global_state = state.breaker_state(GLOBAL_SCOPE)
    reason = f"{check.tier} {check.check_id}: {check.level}, bank {check.bank_balance} " + (
        f"ledger {check.ledger_balance}"
    )
    if check.level == CRITICAL and (global_state or {}).get("state") != "OPEN":
        outputs.breaker(breaker_record(GLOBAL_SCOPE, "OPEN", CRITICAL, reason, COMPONENT))
    elif check.level == SIGNIFICANT and (asset_state or {}).get("state") not in (
        "SUSPENDED",
        "OPEN",
    ):
        scope = f"asset:{asset.code}"
        outputs.breaker(breaker_record(scope, "SUSPENDED", SIGNIFICANT, reason, COMPONENT))
    elif (
        check.level not in (SIGNIFICANT, CRITICAL)
        and asset_state is not None
        and asset_state["state"] == "SUSPENDED"
        and asset_state["actor"] == COMPONENT
    ):
        scope = f"asset:{asset.code}"
        outputs.breaker(breaker_record(scope, "CLOSED", check.level, reason, COMPONENT))


def report_base(account_id: str, statement_date: str) -> Path:
    """`reports/safeguarding/<account>/<date>` under the data directory; the date is read
    as a date and the account must be one path component, so no input picks the path."""
    day = iso_date(statement_date, "statement_date").isoformat()
    if not BANK_ACCOUNT.fullmatch(account_id):
        raise ValueError(f"account id {account_id!r} cannot name a report directory")
    reports = (settings.data_dir / "reports" / "safeguarding").resolve()
    directory = reports / account_id
    directory.mkdir(parents=True, exist_ok=True)
    return directory / day


def write_safeguarding_report(asset: Asset, statement, check: Check, matching, now) -> Path:
    """The regulator's daily safeguarding report for one account, as CSV and JSON."""
    base = report_base(check.account_id, statement["statement_date"])
    summary = {
        "account_id": check.account_id,
        "asset": asset.code,
        "currency": statement["currency"],
        "date": statement["statement_date"],
        "statement_message_id": statement["message_id"],
        "bank_opening_balance": statement["opening_balance"],
        "bank_closing_balance": statement["closing_balance"],
        "client_funds_ledger": check.ledger_balance,
        "difference": check.difference,
        "deviation_pct": check.result(now)["deviation_pct"],
        "level": check.level,
        "entries_matched": matching.matched,
        "findings": [
            {
                "type": f.type,
                "reference": f.reference,
                "bank": f.expected,
                "ledger": f.actual,
                "found_in": f.source_system,
            }
            for f in matching.findings
        ],
        "generated_at": now,
    }
    base.with_suffix(".json").write_text(json.dumps(jsonable(summary), indent=2))
    with base.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["field", "value"])
        for name, value in jsonable(summary).items():
            if name != "findings":
                writer.writerow([name, value])
        writer.writerow([])
        writer.writerow(["finding", "reference", "bank", "ledger", "found_in"])
        for finding in summary["findings"]:
            writer.writerow(jsonable(list(finding.values())))
    return base.with_suffix(".json")
