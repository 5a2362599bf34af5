"""The ledger agent: applies `ledger-commands` to the `accounts` table, in batches.

Reads:  ledger-commands (keyed by account; one order per account).
Writes: ledger-entries, balance-updates, request-results, payout-commands, alerts,
        transfer-credits (credit legs of internal transfers), dead-letters.
Table:  accounts (one `AccountRecord` per account, plus one control record per partition
        and the pages of busy accounts: see `streams.ledger.records`).

Commands come from `streams.command_feed`: Faust assigns the partitions and recovers
their records, the feed reads them in bulk (Faust's per-message path cost more than the
ledger's work). A partition is read from its watermark + 1, never from a committed offset.

Exactly once without broker transactions: for each batch (`streams.ledger.batch`) the
agent computes the new records and their outputs, keeps the records in memory, produces
the outputs and waits until the broker has them, and only then writes each touched
record once to the changelog (through the same producer). The wait overlaps the next
batch: batch N+1 is applied (on N's records in memory) while N's outputs travel; then N's
records are written, N+1's outputs produced, and one flush acknowledges both. An idle
feed, a revocation and a stop wait for everything in flight. A crash anywhere replays
from the written records: records not yet written recompute the same outputs
(deterministic ids, so downstream sees duplicates it can drop), records already written
skip the commands they have (`applied_offset`). Any failure inside a batch, or of an
acknowledgement, stops the worker: continuing would apply later commands before earlier
ones. So does a hole that outlasts `HOLE_WAIT_S` (the feed reads again from the
watermarks at the start), and a broken invariant of a record.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any, NoReturn

import faust
from faust.serializers import codecs
from faust.types import TP, EventT

from streams import metrics
from streams.app import Engine
from streams.command_feed import CommandFeed
from streams.ledger.batch import Batch, apply_batch
from streams.ledger.errors import LedgerHole
from streams.ledger.records import (
    AccountRecord,
    control_key,
    decode_record,
    encode_record,
    record_partition,
)
from streams.ledger_view import LedgerView
from streams.outputs import OutputProducer
from topics import catalogue
from topics.authentication import ACCOUNTS_CHANGELOG, RecordAuth
from topics.codec import DecodeError
from topics.holes import HoleTimer

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


class AccountTable(faust.Table):
    """A table whose records carry their version (`applied_offset`).

    The changelog partition comes from the key (as for the input topic), not from the
    current event, so records can be written after a batch. Recovery keeps the newest
    version of each record, so a stale worker's late write cannot roll it back.
    """

    auth: RecordAuth  # set by the LedgerAgent that owns the table

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
            signed_as=ACCOUNTS_CHANGELOG,
        )

    def authentic(self, event: EventT) -> bool:
        """A changelog entry the ledger wrote (`topics.authentication`); another is skipped,
        loudly: the record keeps its last authentic state."""
        message = event.message
        try:
            self.auth.check(ACCOUNTS_CHANGELOG, message.key, message.value, message.headers)
        except DecodeError as error:
            metrics.unauthenticated_records.labels(ACCOUNTS_CHANGELOG, COMPONENT).inc()
            log.critical(
                "ledger: changelog entry %s[%d]@%d refused: %s",
                message.topic,
                message.partition,
                message.offset,
                error,
            )
            return False
        return True

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        stored = self.data.data  # the memory store's dict
        newest: dict[str, int] = {}
        keep = []
        for event in batch:
            if not self.authentic(event):
                continue
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


class LedgerAgent:
    """The ledger of one worker: its table, its feed, the batch in flight."""

    def __init__(self, engine: Engine, ledger_view: LedgerView) -> None:
        self.engine = engine
        self.ledger_view = ledger_view
        self.accounts = engine.account_table(
            AccountTable,
            "accounts",
            "One record per account: balances, reservations, payouts, dedupe marks.",
        )
        self.accounts.auth = engine.auth  # its changelog entries are authenticated
        self.commands_topic = engine.raw_topic(catalogue.LEDGER_COMMANDS)
        self.feed = CommandFeed(
            engine.bootstrap,
            self.commands_topic.get_topic_name(),
            f"{engine.settings.app_id}-ledger-feed",
        )
        self.holes = HoleTimer(HOLE_WAIT_S)
        self.producer: OutputProducer | None = None  # made when the task starts
        self.in_flight: Batch | None = None  # outputs on their way, records not yet written
        self.acknowledged: asyncio.Future | None = None
        app = engine.app
        app.task(self.run)
        app.agent(self.commands_topic, name="ledger_partitions")(self.membership)
        app.on_partitions_revoked.connect(self.stop_feed)
        app.not_fetched.add(self.commands_topic.get_topic_name())
        app.on_ready.append(self.start_feed)

    # -- one batch -----------------------------------------------------------------------

    def apply(self, messages: list) -> Batch:
        """Apply a batch: its records kept in memory, its outputs encoded (not produced)."""
        batch = apply_batch(
            messages,
            self.accounts,
            self.engine.assets,
            self.engine.codec,
            self.engine.auth,
            self.holes,
            self.ledger_view.count_emitted,
        )
        for key, record in batch.changed_records():
            self.accounts.keep(key, record)
        return batch

    def send(self, batch: Batch, producer: OutputProducer) -> None:
        """Produce the batch's outputs and start waiting for them, without blocking."""
        for topic, key, value, headers in batch.outputs:
            producer.produce(topic, key, value, headers=headers)
        self.in_flight = batch
        self.acknowledged = asyncio.ensure_future(producer.flush())

    async def write_acknowledged_records(self, producer: OutputProducer) -> None:
        """Once the batch in flight has its outputs acknowledged, write its records to the
        changelog (a record is never newer than its outputs); the next flush acknowledges
        them."""
        batch, acknowledged = self.in_flight, self.acknowledged
        if batch is None or acknowledged is None:
            return
        self.in_flight = self.acknowledged = None
        await acknowledged  # raises unless every output was acknowledged
        for key, record in batch.changed_records():
            self.accounts.write_changelog(key, record, producer)
        metrics.events_processed.labels(COMPONENT).inc(batch.handled)

    async def settle_records(self, producer: OutputProducer) -> None:
        """Wait until the broker has everything in flight: outputs, then the records."""
        await self.write_acknowledged_records(producer)
        await producer.flush()

    def next_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """Where each partition's commands continue: after its watermark (0 if none yet)."""
        starts = {}
        for partition in partitions:
            control = self.accounts.get(control_key(partition))
            starts[partition] = control.applied_offset + 1 if control is not None else 0
        return starts

    async def read_and_apply(self, producer: OutputProducer) -> None:
        """One batch from the feed, applied; after a hole, the feed reads again from the
        watermarks (the hole's commands included). Call with `feed.lock` held."""
        messages = await self.feed.read(MAX_BATCH_EVENTS, READ_WAIT_S)
        if not messages:
            await self.settle_records(producer)  # quiet: the last batch is acknowledged now
            return
        batch = self.apply(messages)  # while the previous batch's outputs travel
        await self.write_acknowledged_records(producer)
        self.send(batch, producer)
        if batch.rewind:
            await self.settle_records(producer)
            metrics.ledger_rewinds.inc(len(batch.rewind))
            self.feed.assign_now(self.next_offsets(self.feed.partitions))

    # -- the worker's lifetime -----------------------------------------------------------

    async def run(self) -> None:
        """Reads batches from the feed and applies them, for the worker's lifetime."""
        producer = self.producer = OutputProducer(
            self.engine.bootstrap, self.engine.settings.topic_prefix, self.engine.auth
        )
        try:
            while True:
                await self.feed.assigned.wait()
                async with self.feed.lock:
                    await self.read_and_apply(producer)
        except asyncio.CancelledError:
            raise  # shutting down: what was not written is read again at the start
        except LedgerHole:
            stop(EXIT_LEDGER_HOLE, "a hole in ledger-commands lasted too long; restarting")
        except BaseException:
            stop(EXIT_LEDGER_FAILURE, "stopped by an error; stopping the worker")
        finally:
            try:  # a graceful stop: the last batch's records too (else computed again)
                await self.settle_records(producer)
            except Exception:
                log.warning("ledger: last batch's records not acknowledged", exc_info=True)
            await self.feed.close()

    async def membership(self, stream: faust.StreamT) -> None:
        """Membership only: subscribing makes Faust assign this worker ledger-commands
        partitions and recover their `accounts` records; Faust never fetches them (the
        app's `not_fetched`), the feed reads them."""
        async for _event in stream:  # never reached; acked if it were: no rebalance waits
            log.error("ledger: Faust delivered a command; the feed reads them")

    async def start_feed(self, _consumer: Any, assignment: Iterable[TP]) -> None:
        """After Faust recovered the table for a new assignment: the feed takes it."""
        name = self.commands_topic.get_topic_name()
        owned = [tp.partition for tp in assignment if tp.topic == name]
        await self.feed.assign(self.next_offsets(owned))

    async def stop_feed(self, app: faust.App, revoked: set, **kwargs: Any) -> None:
        """Faust revokes before every reassignment: stop reading until it recovered again.
        The last batch's records reach the broker first: the next owner recovers them."""
        async with self.feed.lock:
            if self.producer is not None:
                try:
                    await self.settle_records(self.producer)
                except asyncio.CancelledError:
                    raise
                except BaseException:
                    stop(EXIT_LEDGER_FAILURE, "records not acknowledged at a revocation")
            self.feed.assign_now({})


def stop(code: int, why: str) -> NoReturn:
    # a batch half applied, or a feed that cannot read: going on would skip commands or
    # apply later ones first; the supervisor restarts the worker from its watermarks
    log.critical("ledger: %s", why, exc_info=True)
    os._exit(code)
