"""The ledger agent: applies `ledger-commands` to the `accounts` table, in batches.

Reads:  ledger-commands (keyed by account; one order per account).
Writes: ledger-entries, balance-updates, request-results, payout-commands, alerts,
        ledger-commands (credit legs of internal transfers), dead-letters.
Table:  accounts (one `AccountRecord` per account, plus one control record per partition
        and the pages of busy accounts: see `streams.records`).

Commands come from `streams.command_feed`: Faust assigns the partitions and recovers
their records, the feed reads them in bulk (Faust's per-message path cost more than the
ledger's work). A partition is read from its watermark + 1, never from a committed offset.

Exactly once without broker transactions: for each batch the agent computes the new
records and their outputs (`streams.ledger_core`), keeps the records in memory, produces
the outputs and waits until the broker has them, and only then writes each touched
record once to the changelog (through the same producer). The wait overlaps the next batch:
batch N+1 is applied (on N's records in memory) while N's outputs travel; then N's
records are written, N+1's outputs produced, and one flush acknowledges both. An idle feed,
a revocation and a stop wait for everything in flight. A crash anywhere replays from the
written records: records not yet written recompute the same outputs (deterministic ids,
so downstream sees duplicates it can drop), records already written skip the commands
they have (`applied_offset`). Any failure inside a batch, or of an acknowledgement, stops the
worker: continuing would apply later commands before earlier ones.

No command is skipped: each partition's control record keeps the partition's watermark
(the last ledger-commands offset applied). A batch that jumps past watermark + 1 (the
broker showed records late) is not applied past the hole: the feed reads again from the
watermark. The watermark is in the changelog, so this holds across crashes too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any, NoReturn

import faust
from confluent_kafka import Message
from faust.serializers import codecs
from faust.types import TP, EventT

from streams import metrics, transport
from streams.app import app, assets, codec, raw_topic, settings
from streams.command_feed import CommandFeed
from streams.ledger_core import (
    Command,
    Context,
    Output,
    Rejected,
    apply,
    decode_command,
    release_held_payouts,
)
from streams.ledger_view import SEQUENCE_HEADER, count_emitted
from streams.outputs import OutputProducer
from streams.records import (
    CONTROL_PREFIX,
    PAGE_PREFIXES,
    AccountRecord,
    control_key,
    decode_record,
    encode_record,
    record_partition,
)
from topics import catalogue
from topics.codec import DecodeError
from topics.dead_letters import dead_letter_of_message

log = logging.getLogger(__name__)

COMPONENT = "ledger"
MAX_BATCH_EVENTS = 2000
READ_WAIT_S = 0.02  # an idle feed waits this long for a first command, then reads again
EXIT_LEDGER_FAILURE = 70
EXIT_LEDGER_HOLE = 71
HOLE_WAIT_S = 15.0  # then restart: the feed starts again at the watermarks


class AccountRecordCodec(codecs.Codec):
    def _dumps(self, value: AccountRecord) -> bytes:
        return encode_record(value)

    def _loads(self, data: bytes) -> AccountRecord:
        return decode_record(data)


codecs.register("account_record", AccountRecordCodec())


def write_order(key: str) -> int:
    """Within a batch: pages, then accounts, then control records. A page before the
    record that no longer holds its contents, a watermark after what it covers: a crash in
    between leaves a record behind, never ahead (one partition's writes arrive in order)."""
    if key.startswith(PAGE_PREFIXES):
        return 0
    return 2 if key.startswith(CONTROL_PREFIX) else 1


class AccountTable(faust.Table):
    """A table whose records carry their version (`applied_offset`).

    The changelog partition comes from the key (as for the input topic), not from the
    current event, so records can be written after a batch. Recovery keeps the newest
    version of each record, so a stale worker's late write cannot roll it back.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # before the store and changelog topic, which are created lazily, read them
        self.key_serializer = "utf8"
        self.value_serializer = "account_record"

    def partition_for_key(self, key: Any) -> int:
        return record_partition(key)

    def keep(self, key: str, record: AccountRecord | None) -> None:
        """The record in memory (None: deleted), for the next batch and queries; its
        changelog entry follows once its outputs are acknowledged (a crash before
        recomputes the same)."""
        if record is None:
            self.data.pop(key, None)
        else:
            self.data[key] = record

    def write_changelog(
        self, key: str, record: AccountRecord | None, producer: OutputProducer
    ) -> None:
        """Produce the record's changelog entry through `producer`.

        With `keep`, what `table[key] = record` does, without Faust's producer: its
        per-message cost was a fifth of the worker's time. Same topic, partition, key and
        value bytes, so recovery and standbys read these entries as Faust's own.
        """
        producer.produce_to(
            self.changelog_topic.get_topic_name(),
            key,
            None if record is None else encode_record(record),  # None: a tombstone
            record_partition(key),
        )

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        stored = self.data.data  # the memory store's dict
        newest: dict[str, int] = {}
        keep = []
        for event in batch:
            record = event.value
            if record is None:
                newest.pop(event.key, None)
                keep.append(event)
                continue
            current = newest.get(event.key)
            if current is None and event.key in stored:
                current = stored[event.key].applied_offset
            if current is not None and record.applied_offset < current:
                metrics.stale_writes_ignored.inc()
                continue
            newest[event.key] = record.applied_offset
            keep.append(event)
        super().apply_changelog_batch(keep)


accounts: AccountTable = app.tables.add(
    AccountTable(
        app,
        name="accounts",
        default=None,
        partitions=catalogue.ACCOUNT_PARTITIONS,
        beacon=app.tables.beacon,
        help="One record per account: balances, reservations, payouts, dedupe marks.",
    )
)
commands_topic = raw_topic(catalogue.LEDGER_COMMANDS)


class Holes:
    """Holes seen in ledger-commands partitions, and since when (bounded wait)."""

    since: dict[tuple[int, int], float] = {}


class Batch:
    """The records touched by one batch and the outputs it will emit, before any write."""

    def __init__(self) -> None:
        self.working: dict[str, AccountRecord | None] = {}  # None: a page deleted
        self.changed: set[str] = set()
        self.outputs: list[tuple[str, str, bytes, list | None]] = []  # encoded, in order
        self.breaker_commands: dict[int, Command] = {}
        self.asset_catalogue = assets()
        self.rewind: dict[int, int] = {}  # partition -> first missing offset
        self.contexts: dict[int, Context] = {}  # partition -> its breaker view, until it changes
        self.handled = 0  # messages applied; those after a hole are read again

    def watermark(self, partition: int) -> AccountRecord:
        return self.record(control_key(partition))

    def in_order(self, message: Message) -> bool:
        """False for a message after a hole in its partition (it is read again later)."""
        partition, offset = message.partition(), message.offset()
        if partition in self.rewind:
            return False
        expected = self.watermark(partition).applied_offset + 1
        if offset <= expected or expected == 0:
            return True
        since = Holes.since.setdefault((partition, expected), time.monotonic())
        if time.monotonic() - since > HOLE_WAIT_S:
            log.critical(
                "ledger-commands[%d]: offsets from %d not delivered; restarting",
                partition,
                expected,
            )
            os._exit(EXIT_LEDGER_HOLE)
        self.rewind[partition] = expected
        return False

    def advance(self, message: Message) -> None:
        control = self.watermark(message.partition())
        if message.offset() > control.applied_offset:
            control.applied_offset = message.offset()
            self.changed.add(control.account_id)
        self.handled += 1

    def record(self, key: str) -> AccountRecord:
        record = self.working.get(key)
        if record is None:
            stored = accounts.get(key)
            record = stored.clone() if stored is not None else AccountRecord(key)
            self.working[key] = record
        return record

    def context(self, partition: int) -> Context:
        context = self.contexts.get(partition)
        if context is None:
            key = control_key(partition)
            control = self.working.get(key) or accounts.get(key)
            breaker = (
                {scope: state for scope, (state, _) in control.breaker.items()} if control else {}
            )
            context = self.contexts[partition] = Context(self.asset_catalogue, breaker, self)
        return context

    def page(self, key: str) -> AccountRecord | None:
        """A record's page (`ledger_core.RecordPages`): as this batch left it, or stored."""
        return self.working[key] if key in self.working else accounts.get(key)

    def add_page(self, page: AccountRecord) -> None:
        self.working[page.account_id] = page
        self.changed.add(page.account_id)

    def drop_page(self, key: str) -> None:
        self.working[key] = None
        self.changed.add(key)

    def emit(self, outputs: list[Output]) -> None:
        for output in outputs:
            headers = None
            if output.topic == catalogue.LEDGER_ENTRIES:  # counted now, skipped when read back
                count_emitted(output.value)
                headers = [(SEQUENCE_HEADER, str(output.value["sequence"]).encode())]
            self.outputs.append(
                (output.topic, output.key, codec.encode(output.topic, output.value), headers)
            )

    def dead_letter(self, message: Message, reason: str, error: str) -> None:
        letter = dead_letter_of_message(
            message, catalogue.LEDGER_COMMANDS, reason, error, COMPONENT
        )
        metrics.dead_letters.labels(COMPONENT, reason).inc()
        self.outputs.append(
            (
                catalogue.DEAD_LETTERS,
                catalogue.LEDGER_COMMANDS,
                codec.encode(catalogue.DEAD_LETTERS, letter),
                None,
            )
        )

    def apply_message(self, message: Message) -> None:
        if not self.in_order(message):
            return
        self.handle(message)
        self.advance(message)

    def handle(self, message: Message) -> None:
        offset = message.offset()
        try:
            command = decode_command(
                codec, message.value(), offset, message.timestamp()[1], message.partition()
            )
        except DecodeError as error:
            self.dead_letter(message, error.reason, str(error))
            return
        record = self.record(command.account_id)
        if offset <= record.applied_offset:
            return  # applied before a crash; its outputs were acknowledged then
        try:
            outputs = apply(record, command, self.context(message.partition()))
        except Rejected as rejection:
            self.emit(rejection.alerts)
            self.dead_letter(message, rejection.reason, str(rejection))
            return
        self.changed.add(record.account_id)
        self.emit(outputs)
        if command.kind == "BREAKER_CHANGE":
            self.breaker_commands[message.partition()] = command
            self.contexts.pop(message.partition(), None)

    def release_held_payouts(self) -> None:
        """After a breaker change, held payouts of the partition that may go are sent."""
        for partition, command in self.breaker_commands.items():
            context = self.context(partition)
            keys = {key for key in accounts if record_partition(key) == partition}
            keys |= {key for key in self.working if record_partition(key) == partition}
            for key in sorted(keys):
                if key.startswith((CONTROL_PREFIX, *PAGE_PREFIXES)):
                    continue
                stored = self.working.get(key) or accounts.get(key)
                if stored is None or not any(p.held for p in stored.payouts.values()):
                    continue
                record = self.record(key)
                outputs = release_held_payouts(record, command, context)
                if outputs:
                    record.applied_offset = max(record.applied_offset, command.offset)
                    record.version += 1
                    self.changed.add(key)
                    self.emit(outputs)

    def keep_records(self) -> None:
        for key in self.changed:
            accounts.keep(key, self.working[key])

    def produce_outputs(self, producer: OutputProducer) -> None:
        for topic, key, value, headers in self.outputs:
            producer.produce(topic, key, value, headers=headers)

    def write_records(self, producer: OutputProducer) -> None:
        for key in sorted(self.changed, key=write_order):
            accounts.write_changelog(key, self.working[key], producer)


def apply_batch(messages: list[Message]) -> Batch:
    """Apply a batch: its records kept in memory, its outputs encoded (not yet produced)."""
    batch = Batch()
    for message in messages:
        batch.apply_message(message)
    batch.release_held_payouts()
    batch.keep_records()
    return batch


class InFlight:
    """The last batch sent: its outputs on their way to the broker, its records not yet
    written to the changelog."""

    batch: Batch | None = None
    acknowledged: asyncio.Task | None = None


def send(batch: Batch, producer: OutputProducer) -> None:
    """Produce the batch's outputs and start waiting for them, without blocking."""
    batch.produce_outputs(producer)
    InFlight.batch = batch
    InFlight.acknowledged = asyncio.ensure_future(producer.flush())


async def write_acknowledged_records(producer: OutputProducer) -> None:
    """Once the batch in flight has its outputs acknowledged, write its records to the
    changelog (a record is never newer than its outputs); the next flush acknowledges them."""
    batch, acknowledged = InFlight.batch, InFlight.acknowledged
    if batch is None or acknowledged is None:
        return
    InFlight.batch = InFlight.acknowledged = None
    await acknowledged  # raises unless every output was acknowledged
    batch.write_records(producer)
    metrics.events_processed.labels(COMPONENT).inc(batch.handled)


async def settle_records(producer: OutputProducer) -> None:
    """Wait until the broker has everything in flight: outputs, then the records."""
    await write_acknowledged_records(producer)
    await producer.flush()


feed = CommandFeed(
    settings.kafka or "127.0.0.1:9092",
    commands_topic.get_topic_name(),
    f"{settings.app_id}-ledger-feed",
)


def next_offsets(partitions: Iterable[int]) -> dict[int, int]:
    """Where each partition's commands continue: after its watermark (0 if none yet)."""
    starts = {}
    for partition in partitions:
        control = accounts.get(control_key(partition))
        starts[partition] = control.applied_offset + 1 if control is not None else 0
    return starts


async def read_and_apply(producer: OutputProducer) -> None:
    """One batch from the feed, applied; after a hole, the feed reads again from the
    watermarks (the hole's commands included). Call with `feed.lock` held."""
    messages = await feed.read(MAX_BATCH_EVENTS, READ_WAIT_S)
    if not messages:
        await settle_records(producer)  # quiet: the last batch is acknowledged now
        return
    batch = apply_batch(messages)  # while the previous batch's outputs travel
    await write_acknowledged_records(producer)
    send(batch, producer)
    if batch.rewind:
        await settle_records(producer)
        metrics.ledger_rewinds.inc(len(batch.rewind))
        feed.assign_now(next_offsets(feed.partitions))


class Outputs:
    """The ledger's producer, made when the ledger task starts."""

    producer: OutputProducer | None = None


def stop_on_failure() -> NoReturn:
    # a batch half applied, or a feed that cannot read: going on would skip commands
    # or apply later ones first; the supervisor restarts the worker from its watermarks
    log.critical("ledger: stopped by an error; stopping the worker", exc_info=True)
    os._exit(EXIT_LEDGER_FAILURE)


@app.task
async def ledger() -> None:
    """Reads batches from the feed and applies them, for the worker's lifetime."""
    producer = Outputs.producer = OutputProducer()
    try:
        while True:
            await feed.assigned.wait()
            async with feed.lock:
                await read_and_apply(producer)
    except asyncio.CancelledError:
        raise  # shutting down: what was not written is read again at the start
    except BaseException:
        stop_on_failure()
    finally:
        try:  # a graceful stop: the last batch's records too (else they are computed again)
            await settle_records(producer)
        except Exception:
            log.warning("ledger: the last batch's records not acknowledged at stop", exc_info=True)
        await feed.close()


@app.agent(commands_topic)
async def ledger_partitions(stream: faust.StreamT) -> None:
    """Membership only: subscribing makes Faust assign this worker ledger-commands
    partitions and recover their `accounts` records; Faust never fetches them
    (`transport.NOT_FETCHED`), the feed reads them."""
    async for _event in stream:  # never reached; acked if it were, so a rebalance never waits
        log.error("ledger: Faust delivered a command; the feed reads them")


async def start_feed(_consumer: Any, assignment: Iterable[TP]) -> None:
    """After Faust recovered the table for a new assignment: the feed takes the partitions."""
    name = commands_topic.get_topic_name()
    owned = [tp.partition for tp in assignment if tp.topic == name]
    await feed.assign(next_offsets(owned))


@app.on_partitions_revoked.connect
async def stop_feed(app: faust.App, revoked: set, **kwargs: Any) -> None:
    """Faust revokes before every reassignment: stop reading until it recovered again.
    The last batch's records reach the broker first: the next owner recovers them."""
    async with feed.lock:
        if Outputs.producer is not None:
            try:
                await settle_records(Outputs.producer)
            except asyncio.CancelledError:
                raise
            except BaseException:
                stop_on_failure()
        feed.assign_now({})


transport.NOT_FETCHED.add(commands_topic.get_topic_name())
transport.ON_READY.append(start_feed)
