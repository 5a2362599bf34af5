"""Reconciliation: the Faust agent of the three bank tiers and of the operator wallets.

Agent:  reconcile (bank-notifications = tier 1, bank-balances = tier 2, bank-statements =
        tier 3; all keyed by the bank account, so one record sees its account's events in
        order; and wallet-outflows and wallet-balances, keyed by chain, checked by
        `streams.reconciliation.wallets`, which keeps no record).
Table:  reconciliation (one `BankAccountRecord` per bank account: the bank-reported
        balance and the entry references already applied, in one record, so a redelivered
        camt.054 changes nothing).
Emits:  reconciliation-results, discrepancies, eod-snapshots, alerts, and breaker-state
        changes (`streams.reconciliation.tiers`). Outputs carry deterministic ids and are
        flushed before the record is written: a crash re-emits them, never loses them.

An event whose bank account, currency or amounts do not suit (`core.bank_events`), or that
cannot be decoded, is dead-lettered; so is one a defect fails on (the agent goes on).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import EventT

from core.bank_events import check_bank_event
from core.fields import FieldError
from core.reasons import Reason
from streams import metrics
from streams.app import Engine
from streams.ledger_view import LedgerView
from streams.outputs import OutputProducer
from streams.reconciliation.core import BankAccountRecord
from streams.reconciliation.state import ReconciliationView
from streams.reconciliation.tiers import COMPONENT, TIERS, Tiers
from streams.reconciliation.wallets import WalletGuard
from topics import catalogue
from topics.alerts import alert
from topics.authentication import refused_alert
from topics.breaker import broadcast
from topics.codec import Codec, DecodeError
from topics.dead_letters import dead_letter_of_message
from topics.partitioning import partition_for

log = logging.getLogger(__name__)


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


class Outputs:
    """What one event emits, produced in order and flushed before the record is written."""

    def __init__(self, producer: OutputProducer, codec: Codec) -> None:
        self.producer = producer
        self.codec = codec
        self.now = datetime.now(UTC)

    def emit(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.producer.produce(topic, key, self.codec.encode(topic, value))

    def alert(self, kind: str, severity: str, account: str, message: str, **details) -> None:
        raised = alert(
            kind,
            severity,
            message,
            raised_by=str(details.get("check_id", account)),
            raised_at=self.now,
            account_id=account,
            details=details,
        )
        self.emit(catalogue.ALERTS, kind, raised)

    def breaker(self, record: dict[str, Any]) -> None:
        broadcast(
            lambda topic, key, value, partition: self.producer.produce(
                topic, key, value, partition=partition
            ),
            self.codec,
            record,
        )


class Reconciliation:
    """The agent, its table and the views it reads, registered on the engine's app."""

    def __init__(self, engine: Engine, ledger: LedgerView, state: ReconciliationView) -> None:
        self.engine = engine
        self.codec = engine.codec
        self.assets = engine.assets
        self.prefix = engine.settings.topic_prefix
        self.tiers = Tiers(ledger, state, engine.settings.data_dir)
        self.bank_accounts = engine.account_table(
            BankAccountTable,
            "reconciliation",
            "One record per operator bank account: bank balance and applied entries.",
        )
        self.wallets = WalletGuard(engine, ledger, state)
        topics = engine.raw_topic(*TIERS, catalogue.WALLET_OUTFLOWS, catalogue.WALLET_BALANCES)
        engine.app.agent(topics, name="reconcile")(self.reconcile)

    async def reconcile(self, stream: faust.StreamT) -> None:
        producer = OutputProducer(  # no linger: latency
            self.engine.bootstrap, self.prefix, self.engine.auth, linger_ms=0
        )
        async for event in stream.events():
            outputs = Outputs(producer, self.codec)
            try:
                record = await self.handle(event, outputs)
            except Exception as error:  # a defect shown by one event: keep it, go on
                log.exception("reconciliation: event at %s not handled", event.message.offset)
                topic = catalogue.short_name(event.message.topic, self.prefix)
                reason = f"{type(error).__name__}: {error}"
                self.dead_letter(event, topic, outputs, Reason.INTERNAL_ERROR, reason)
                record = None
            await producer.flush()
            if record is not None:
                self.bank_accounts[record.account_id] = record
            metrics.events_processed.labels(COMPONENT).inc()

    async def handle(self, event: EventT, outputs: Outputs) -> BankAccountRecord | None:
        message = event.message
        topic = catalogue.short_name(message.topic, self.prefix)
        try:
            self.engine.auth.check(topic, message.key, message.value, message.headers)
        except DecodeError as error:
            raised = refused_alert(topic, message.partition, message.offset, str(error), COMPONENT)
            outputs.emit(catalogue.ALERTS, raised["kind"], raised)
            self.dead_letter(event, topic, outputs, error.reason, str(error))
            return None
        try:
            value = self.codec.decode(topic, message.value)
        except DecodeError as error:
            self.dead_letter(event, topic, outputs, error.reason, str(error))
            return None
        if topic == catalogue.WALLET_OUTFLOWS:
            await self.wallets.check(value, outputs)
            return None
        if topic == catalogue.WALLET_BALANCES:
            await self.wallets.check_holdings(value, outputs)
            return None
        try:  # the connector's checks: a configured account, its currency, its scale, dates
            asset = check_bank_event(value, self.assets)
        except FieldError as error:
            self.dead_letter(event, topic, outputs, error.reason, str(error))
            return None
        account = value["account_id"]
        record = self.bank_accounts.get(account) or BankAccountRecord(account)
        if topic == catalogue.BANK_NOTIFICATIONS:
            await self.tiers.tier1(record, asset, value, outputs)
        elif topic == catalogue.BANK_BALANCES:
            self.tiers.tier2(record, asset, value, outputs)
        else:
            self.tiers.tier3(record, asset, value, outputs)
        return record

    def dead_letter(self, event: EventT, topic: str, outputs: Outputs, reason: str, error: str):
        letter = dead_letter_of_message(event.message, topic, reason, error, COMPONENT)
        metrics.dead_letters.labels(COMPONENT, reason).inc()
        outputs.emit(catalogue.DEAD_LETTERS, topic, letter)
