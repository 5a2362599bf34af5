"""Intake: turns every ledger input into one `LedgerCommand`, in one order per account.

Reads the request topics (deposit, withdrawal, transfer), chain observations, payout
and sweep results, transfer credits and breaker states; checks that every record of an engine topic
is the engine's (`topics.authentication`; also for the view-only bindings, prices and
API keys, so each forgery is dead-lettered and alerted once); decodes and validates each
message; writes
valid ones to `ledger-commands` (keyed by account, so each account's inputs have a single
order the ledger applies and a replay reproduces) and everything else to `dead-letters`
with its reason; a request that decodes but is invalid also gets a REJECTED result. The
partition always keeps moving.

All inputs have the ledger's partition count and key, and the group uses the range
assignor, so one intake instance owns partition p of every input and is the only writer
of ledger-commands partition p: its order is never interleaved with another writer's.

Intake is stateless, so it runs as a plain confluent-kafka consumer group (a Faust
stream would add its per-message overhead for nothing), in its own process beside the
worker (`streams.intake_process`); it is at-least-once, and command ids are
deterministic, so a re-sent command is a duplicate the ledger ignores.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from core import fields, ids
from core.assets import AssetCatalogue, load_assets
from core.breaker import scope_problem
from core.config import Settings
from core.fields import SUSPENSE_ACCOUNT, TREASURY_ACCOUNT, FieldError
from core.observations import creditable, observed_asset
from core.reasons import Reason
from core.requests import RequestError, revalidate
from streams import metrics
from streams.ledger.records import control_key
from topics import catalogue
from topics.authentication import RecordAuth, SigningProducer, record_auth, refused_alert
from topics.codec import Codec, DecodeError, make_codec
from topics.dead_letters import dead_letter_of_message
from topics.holes import HoleGuard
from topics.kafka import (
    FLUSHED_BATCH_LINGER_MS,
    consume_available,
    flush,
    make_consumer,
    make_producer,
)
from topics.partitioning import partition_for

log = logging.getLogger(__name__)

COMPONENT = "intake"
MAX_BATCH_MESSAGES = 1000
POLL_TIMEOUT_S = 0.1

REQUEST_KINDS = {
    catalogue.DEPOSIT_REQUESTS: ("deposit", "DEPOSIT_REQUEST"),
    catalogue.WITHDRAWAL_REQUESTS: ("withdrawal", "WITHDRAWAL_REQUEST"),
    catalogue.TRANSFER_REQUESTS: ("transfer", "TRANSFER_REQUEST"),
}
# Engine records only views read: intake checks their authenticity and nothing else (it is
# the one consumer group that reads them, so each forgery is reported once).
CHECKED_ONLY_TOPICS = (catalogue.ADDRESS_BINDINGS, catalogue.PRICES, catalogue.API_KEYS)
INPUT_TOPICS = (
    *REQUEST_KINDS,
    catalogue.CHAIN_OBSERVATIONS,
    catalogue.PAYOUT_RESULTS,
    catalogue.SWEEP_RESULTS,
    catalogue.TRANSFER_CREDITS,
    catalogue.BREAKER_STATE,
    catalogue.DEPOSIT_ASSIGNMENTS,
    *CHECKED_ONLY_TOPICS,
)
CREDIT_LEGS = {  # command kind -> the prefix of its id
    "TRANSFER_CREDIT": ids.TRANSFER_CREDIT_PREFIX,
    "ASSIGNMENT_CREDIT": ids.ASSIGNMENT_CREDIT_PREFIX,
}


@dataclass(frozen=True)
class Output:
    topic: str  # catalogue name
    key: str
    value: bytes
    partition: int | None = None  # set only for broadcasts to every partition


@dataclass(frozen=True)
class Source:
    topic: str  # catalogue name
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


class Rejected(Exception):
    def __init__(self, reason: str, error: str, request: dict[str, Any] | None = None):
        super().__init__(error)
        self.reason = reason
        self.request = request


def command(source: Source, kind: str, command_id: str, account_id: str) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "kind": kind,
        "account_id": account_id,
        "payload": source.value,
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
    }


def _request_command(source: Source, record: dict[str, Any], assets: AssetCatalogue) -> dict:
    request_kind, command_kind = REQUEST_KINDS[source.topic]
    try:
        revalidate(request_kind, record, assets)
    except RequestError as error:
        raise Rejected(error.reason, str(error), record) from None
    command_id = ids.request_command(record["request_id"])
    return command(source, command_kind, command_id, record["account_id"])


def _observation_command(source: Source, record: dict[str, Any], assets: AssetCatalogue):
    try:
        if record["status"] == "CONFIRMED":
            creditable(record, assets)  # zero, dust and bad amounts are never credited
        else:
            observed_asset(record, assets)
            fields.holder_account_id(record["account_id"])
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    if record["status"] == "SEEN":
        return None  # not creditable yet; the watcher republishes as confirmations grow
    command_id = ids.deposit_command(record["deposit_id"], record["status"], record["block_hash"])
    return command(source, "CHAIN_OBSERVATION", command_id, record["account_id"])


def _payout_command(source: Source, record: dict[str, Any]) -> dict[str, Any] | None:
    if record["status"] == "SUBMITTED":
        return None  # informational; only CONFIRMED or FAILED change the ledger
    try:
        fields.account_id(record["account_id"])
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    fee = record["network_fee"]
    if fee is not None and fee < 0:
        raise Rejected(Reason.INVALID_AMOUNT, f"network_fee: must not be negative ({fee})")
    command_id = ids.payout_result_command(record["payout_id"], record["status"])
    return command(source, "PAYOUT_RESULT", command_id, record["account_id"])


def _sweep_command(source: Source, record: dict[str, Any]) -> dict[str, Any] | None:
    """A sweep's final result: a command of the treasury record (the operator's own
    postings: its network fee), one per sweep whatever its status."""
    if record["status"] == "SUBMITTED":
        return None  # informational; the sweep moves value between the operator's wallets
    fee = record["network_fee"]
    if fee is not None and fee < 0:
        raise Rejected(Reason.INVALID_AMOUNT, f"network_fee: must not be negative ({fee})")
    if partition_for(TREASURY_ACCOUNT, catalogue.ACCOUNT_PARTITIONS) != source.partition:
        raise Rejected(Reason.WRONG_PARTITION, "key: a sweep result is keyed by the treasury")
    command_id = ids.sweep_result_command(record["sweep_id"])
    return command(source, "SWEEP_RESULT", command_id, TREASURY_ACCOUNT)


def _breaker_command(source: Source, record: dict[str, Any], codec: Codec, assets) -> list:
    """Breaker-state partition p (every change is on each) goes to ledger-commands p."""
    problem = scope_problem(record["scope"], assets.assets)
    if problem:
        raise Rejected(Reason.INVALID_FIELD, f"scope: {problem}")
    key = control_key(source.partition)
    envelope = command(source, "BREAKER_CHANGE", ids.breaker_command(source.offset), key)
    value = codec.encode(catalogue.LEDGER_COMMANDS, envelope)
    return [Output(catalogue.LEDGER_COMMANDS, key, value, source.partition)]


def _transfer_credit(source: Source, record: dict[str, Any]) -> list[Output]:
    """A credit leg is already a ledger command; it only joins the receiving account's order
    (the ledger checks it again against its payload: `ledger_core.check_command`)."""
    account = record["account_id"]
    try:
        fields.account_id(account)
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    prefix = CREDIT_LEGS.get(record["kind"])
    if prefix is None or not record["command_id"].startswith(prefix):
        raise Rejected(Reason.INVALID_FIELD, f"kind: {record['kind']} is not a credit leg")
    if partition_for(account, catalogue.ACCOUNT_PARTITIONS) != source.partition:
        raise Rejected(Reason.WRONG_PARTITION, f"account_id: {account!r} is not of this partition")
    return [Output(catalogue.LEDGER_COMMANDS, account, source.value, source.partition)]


def _assignment_command(source: Source, record: dict[str, Any], assets) -> dict[str, Any]:
    """An operator's assignment of a deposit in suspense: a command of the suspense record
    (keyed by it, so on its partition), checked again by the ledger against its mark."""
    try:
        if not isinstance(record["deposit_id"], str) or not record["deposit_id"]:
            raise FieldError(Reason.MISSING_FIELD, "deposit_id", "is required")
        asset = assets.get(record["asset"])
        if asset is None:
            raise FieldError(Reason.UNKNOWN_ASSET, "asset", f"unknown asset {record['asset']!r}")
        fields.account_id(record["account_id"])
        if not record["note"].strip():
            raise FieldError(Reason.MISSING_FIELD, "note", "why the deposit is theirs")
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    if record["amount"] <= 0:
        raise Rejected(Reason.INVALID_AMOUNT, "amount: must be positive")
    if partition_for(SUSPENSE_ACCOUNT, catalogue.ACCOUNT_PARTITIONS) != source.partition:
        message = "key: an assignment is keyed by the suspense account"
        raise Rejected(Reason.WRONG_PARTITION, message)
    command_id = ids.assignment(record["deposit_id"])
    return command(source, "DEPOSIT_ASSIGNMENT", command_id, SUSPENSE_ACCOUNT)


def route(
    source: Source, codec: Codec, assets: AssetCatalogue, now: datetime, auth: RecordAuth
) -> list[Output]:
    """Everything intake writes for one input message (pure: no I/O). An input it cannot
    route is dead-lettered with its reason, whatever went wrong: intake never stops on one;
    a record of an engine topic the engine did not write also raises a CRITICAL alert."""
    try:
        auth.check(source.topic, source.key, source.value, source.headers)
    except DecodeError as error:
        raised = refused_alert(source.topic, source.partition, source.offset, str(error), COMPONENT)
        alert = Output(catalogue.ALERTS, raised["kind"], codec.encode(catalogue.ALERTS, raised))
        return [_dead_letter(source, codec, error.reason, str(error)), alert]
    if source.topic in CHECKED_ONLY_TOPICS:
        return []
    try:
        return _route(source, codec, assets, now)
    except Exception as error:  # a defect shown by one input: keep it, go on
        log.exception("intake: %s[%d]@%d not routed", source.topic, source.partition, source.offset)
        return [
            _dead_letter(source, codec, Reason.INTERNAL_ERROR, f"{type(error).__name__}: {error}")
        ]


def _route(source: Source, codec: Codec, assets: AssetCatalogue, now: datetime) -> list[Output]:
    try:
        record = codec.decode(source.topic, source.value)
        if source.topic == catalogue.BREAKER_STATE:
            return _breaker_command(source, record, codec, assets)
        if source.topic == catalogue.TRANSFER_CREDITS:
            return _transfer_credit(source, record)
        if source.topic in REQUEST_KINDS:
            ledger_command = _request_command(source, record, assets)
        elif source.topic == catalogue.CHAIN_OBSERVATIONS:
            ledger_command = _observation_command(source, record, assets)
        elif source.topic == catalogue.DEPOSIT_ASSIGNMENTS:
            ledger_command = _assignment_command(source, record, assets)
        elif source.topic == catalogue.SWEEP_RESULTS:
            ledger_command = _sweep_command(source, record)
        else:
            ledger_command = _payout_command(source, record)
    except DecodeError as error:
        return [_dead_letter(source, codec, error.reason, str(error))]
    except Rejected as error:
        outputs = [_dead_letter(source, codec, error.reason, str(error))]
        if error.request is not None:
            outputs.append(_rejection(source.topic, error.request, error.reason, codec, now))
        return outputs
    if ledger_command is None:
        return []
    value = codec.encode(catalogue.LEDGER_COMMANDS, ledger_command)
    return [Output(catalogue.LEDGER_COMMANDS, ledger_command["account_id"], value)]


def _dead_letter(source: Source, codec: Codec, reason: str, error: str) -> Output:
    record = dead_letter_of_message(source, source.topic, reason, error, COMPONENT)
    metrics.dead_letters.labels(COMPONENT, reason).inc()
    return Output(
        catalogue.DEAD_LETTERS, source.topic, codec.encode(catalogue.DEAD_LETTERS, record)
    )


def _rejection(topic: str, request: dict, reason: str, codec: Codec, now: datetime) -> Output:
    result = {
        "request_id": request["request_id"],
        "account_id": request["account_id"],
        "request_kind": REQUEST_KINDS[topic][0],
        "status": "REJECTED",
        "reason": reason,
        "asset": request.get("asset"),
        "amount": request.get("amount"),
        "fee": None,
        "version": 0,
        "decided_at": now,
    }
    return Output(
        catalogue.REQUEST_RESULTS,
        request["request_id"],
        codec.encode(catalogue.REQUEST_RESULTS, result),
    )


class IntakeLoop:
    """The consume -> route -> produce -> commit loop, run in its own thread."""

    def __init__(self, settings: Settings) -> None:
        bootstrap = settings.kafka or "127.0.0.1:9092"
        group_id = f"{settings.app_id}-intake"
        self.prefix = settings.topic_prefix
        self.assets = load_assets(settings.assets_file)
        self.codec = make_codec(settings.schema_registry, settings.topic_prefix)
        self.consumer = make_consumer(
            bootstrap, group_id, **{"partition.assignment.strategy": "range"}
        )
        self.auth = record_auth(settings, catalogue.WORKER)
        self.producer = SigningProducer(
            make_producer(bootstrap, **{"linger.ms": FLUSHED_BATCH_LINGER_MS}),
            self.prefix,
            self.auth,
        )
        self.holes = HoleGuard(self.consumer)
        self.stopping = threading.Event()
        self.assigned = threading.Event()
        self.consumer.subscribe(
            [catalogue.spec(name).full_name(self.prefix) for name in INPUT_TOPICS],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )

    def _on_assign(self, consumer, partitions) -> None:
        starts = []
        for tp in consumer.committed(partitions, timeout=30):
            if tp.offset < 0:  # nothing committed: reading starts at the oldest record
                tp.offset = consumer.get_watermark_offsets(tp, timeout=30)[0]
            starts.append(tp)
        self.holes.start_at(starts)
        self.assigned.set()

    def _on_revoke(self, consumer, partitions) -> None:
        # hand over cleanly: the next owner starts after our writes are in, and where we
        # stopped (the batches' commits are asynchronous)
        self.producer.flush(30)
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self.commit_handled(
            [tp for tp in self.holes.positions() if (tp.topic, tp.partition) in revoked]
        )
        self.holes.forget(partitions)

    def commit_handled(self, positions: list[TopicPartition]) -> None:
        """Commit and wait, between batches (every output acknowledged); a failure only
        means commands are sent again, which the ledger ignores."""
        if not positions:
            return
        try:
            self.consumer.commit(offsets=positions, asynchronous=False)
        except KafkaException as error:
            log.warning("intake: commit failed (%s); those commands will be sent again", error)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.poll_once()
            self.commit_handled(self.holes.positions())  # stopping between batches
        finally:
            self.producer.flush()
            self.consumer.close()

    def poll_once(self) -> int:
        messages = consume_available(self.consumer, MAX_BATCH_MESSAGES, POLL_TIMEOUT_S)
        handled = 0
        now = datetime.now(UTC)
        for message in self.holes.contiguous(messages):
            source = Source(
                catalogue.short_name(message.topic(), self.prefix),
                message.partition(),
                message.offset(),
                message.key(),
                message.value(),
                message.headers(),
            )
            for output in route(source, self.codec, self.assets, now, self.auth):
                extra = {} if output.partition is None else {"partition": output.partition}
                self.producer.produce(
                    self.prefix + output.topic, output.value, output.key.encode(), **extra
                )
            handled += 1
        if handled:
            # commit only once every output of the batch is acknowledged (at-least-once);
            # without waiting for the commit: a lost one re-sends commands the ledger ignores
            flush(self.producer, "intake's outputs (not committing)")  # raises: loop stops
            moved = self.holes.moved()  # only these: one broker write per partition
            if moved:
                self.consumer.commit(offsets=moved, asynchronous=True)
            metrics.events_processed.labels(COMPONENT).inc(handled)
        return handled
