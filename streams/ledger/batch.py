"""A batch of ledger-commands applied as the ledger agent applies it (pure: no I/O).

Owns the rules of one batch, over any store of records (`RecordStore`: the agent's
accounts table, or a dict in the pure tests): each message decoded and applied in its
partition's order (`streams.ledger.apply`), a message after a hole in its partition not
applied (the feed reads again from the watermark: `rewind`) unless the hole is settled
(below), the partition's watermark
advanced in its control record, refused commands dead-lettered with their alerts, held
payouts released after a breaker change (their records' version and offset moved on),
and the outputs encoded in order. The batch keeps every record it touched, changed in
memory only: writing them (pages, then accounts, then control records: `write_order`)
is the caller's, after the outputs are acknowledged.

A settled hole: offsets the broker will never deliver. tansu on `s3://` assigns offsets
and moves its watermark before it has stored the batch: a broker killed in between leaves
those offsets empty for good (seen after a SIGKILL of everything: `ledger-commands[6]`
offset 6 missing, 7 on). What was there was never acknowledged, so its producer wrote it
again later. A record is visible late only while the request that wrote the offsets
before it is in flight: once the first record after a hole was written more than
`SETTLED_HOLE_S` ago, no request can still fill it, and the hole is passed with a
CRITICAL `ledger.hole_skipped` alert. The rule reads only the records, so a replay passes
the same holes the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from core.assets import AssetCatalogue
from streams import metrics
from streams.ledger.apply import apply
from streams.ledger.commands import Command, decode_command
from streams.ledger.errors import LedgerHole, Rejected
from streams.ledger.payouts import release_held_payouts
from streams.ledger.records import (
    CONTROL_PREFIX,
    PAGE_PREFIXES,
    AccountRecord,
    control_key,
    record_partition,
)
from streams.ledger.step import Context, Output
from topics import catalogue
from topics.alerts import alert
from topics.authentication import RecordAuth, refused_alert
from topics.codec import Codec, DecodeError
from topics.dead_letters import dead_letter_of_message
from topics.holes import HoleTimer

COMPONENT = "ledger"
# longer than any produce request can be in flight (librdkafka's request.timeout.ms is 30 s)
SETTLED_HOLE_S = 60.0
TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka's value (this module does no broker I/O)
SEQUENCE_HEADER = "sequence"  # on ledger-entries records: the transaction's chain sequence


class Message(Protocol):
    """What the batch reads of a ledger-commands record (a confluent-kafka Message)."""

    def partition(self) -> int: ...

    def offset(self) -> int: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> list[tuple[str, bytes]] | None: ...

    def key(self) -> bytes | None: ...

    def timestamp(self) -> tuple[int, int]: ...


class RecordStore(Protocol):
    """Where records are kept between batches (keys of the partitions being applied)."""

    def get(self, key: str) -> AccountRecord | None: ...

    def __iter__(self) -> Any: ...


Encoded = tuple[str, str, bytes, list | None]  # (catalogue topic, key, value, headers)


def write_order(key: str) -> int:
    """Within a batch: pages, then accounts, then control records. A page before the
    record that no longer holds its contents, a watermark after what it covers: a crash in
    between leaves a record behind, never ahead (one partition's writes arrive in order)."""
    if key.startswith(PAGE_PREFIXES):
        return 0
    return 2 if key.startswith(CONTROL_PREFIX) else 1


class Batch:
    """The records touched by one batch and the outputs it will emit, before any write."""

    def __init__(
        self,
        store: RecordStore,
        assets: AssetCatalogue,
        codec: Codec,
        auth: RecordAuth,
        holes: HoleTimer,
        on_entry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.asset_catalogue = assets
        self.codec = codec
        self.auth = auth
        self.holes = holes  # since when each partition's hole is waited for
        self.on_entry = on_entry  # each ledger entry emitted (the whole-ledger view's count)
        self.working: dict[str, AccountRecord | None] = {}  # None: a page deleted
        self.changed: set[str] = set()
        self.outputs: list[Encoded] = []  # encoded, in order
        self.breaker_commands: dict[int, Command] = {}
        self.rewind: dict[int, int] = {}  # partition -> first missing offset
        self.contexts: dict[int, Context] = {}  # partition -> its breaker view, until it changes
        self.handled = 0  # messages applied; those after a hole are read again

    # -- records -------------------------------------------------------------------------

    def record(self, key: str) -> AccountRecord:
        record = self.working.get(key)
        if record is None:
            stored = self.store.get(key)
            record = stored.clone() if stored is not None else AccountRecord(key)
            self.working[key] = record
        return record

    def watermark(self, partition: int) -> AccountRecord:
        return self.record(control_key(partition))

    def page(self, key: str) -> AccountRecord | None:
        """A record's page (`step.RecordPages`): as this batch left it, or stored."""
        return self.working[key] if key in self.working else self.store.get(key)

    def add_page(self, page: AccountRecord) -> None:
        self.working[page.account_id] = page
        self.changed.add(page.account_id)

    def drop_page(self, key: str) -> None:
        self.working[key] = None
        self.changed.add(key)

    def context(self, partition: int) -> Context:
        context = self.contexts.get(partition)
        if context is None:
            key = control_key(partition)
            control = self.working.get(key) or self.store.get(key)
            breaker = (
                {scope: state for scope, (state, _) in control.breaker.items()} if control else {}
            )
            context = self.contexts[partition] = Context(self.asset_catalogue, breaker, self)
        return context

    # -- applying ------------------------------------------------------------------------

    def apply_message(self, message: Message) -> None:
        if not self.in_order(message):
            return
        self.handle(message)
        self.advance(message)

    def in_order(self, message: Message) -> bool:
        """False for a message after a hole in its partition (it is read again later);
        `LedgerHole` once the hole has lasted too long (the worker starts again)."""
        partition, offset = message.partition(), message.offset()
        if partition in self.rewind:
            return False
        expected = self.watermark(partition).applied_offset + 1
        if offset <= expected or expected == 0:
            return True
        if settled(message):
            self.holes.over((partition, expected))
            self.skip_hole(partition, expected, offset)
            return True
        if self.holes.waited_too_long((partition, expected)):
            raise LedgerHole(f"ledger-commands[{partition}]: offsets from {expected} not delivered")
        self.rewind[partition] = expected
        return False

    def skip_hole(self, partition: int, first: int, after: int) -> None:
        metrics.ledger_holes_skipped.inc()
        hole = f"ledger-commands[{partition}]@{first}-{after - 1}"
        raised = alert(
            "ledger.hole_skipped",
            "CRITICAL",
            f"{hole}: offsets the broker never delivered (never acknowledged to their "
            "writer, which wrote them again): passed",
            raised_by=hole,
            raised_at=datetime.now(UTC),
            details={"partition": partition, "first": first, "last": after - 1},
        )
        self.emit([Output(catalogue.ALERTS, raised["kind"], raised)])

    def advance(self, message: Message) -> None:
        control = self.watermark(message.partition())
        if message.offset() > control.applied_offset:
            control.applied_offset = message.offset()
            self.changed.add(control.account_id)
        self.handled += 1

    def handle(self, message: Message) -> None:
        offset = message.offset()
        try:
            self.auth.check(
                catalogue.LEDGER_COMMANDS, message.key(), message.value(), message.headers()
            )
        except DecodeError as error:
            alert = refused_alert(
                catalogue.LEDGER_COMMANDS, message.partition(), offset, str(error), COMPONENT
            )
            self.emit([Output(catalogue.ALERTS, alert["kind"], alert)])
            self.dead_letter(message, error.reason, str(error))
            return
        try:
            command = decode_command(
                self.codec, message.value(), offset, message.timestamp()[1], message.partition()
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
            keys = {key for key in self.store if record_partition(key) == partition}
            keys |= {key for key in self.working if record_partition(key) == partition}
            for key in sorted(keys):
                if key.startswith((CONTROL_PREFIX, *PAGE_PREFIXES)):
                    continue
                stored = self.working.get(key) or self.store.get(key)
                if stored is None or not any(p.held for p in stored.payouts.values()):
                    continue
                record = self.record(key)
                outputs = release_held_payouts(record, command, context)
                if outputs:
                    record.applied_offset = max(record.applied_offset, command.offset)
                    record.version += 1
                    self.changed.add(key)
                    self.emit(outputs)

    # -- outputs -------------------------------------------------------------------------

    def emit(self, outputs: list[Output]) -> None:
        for output in outputs:
            headers = None
            if output.topic == catalogue.LEDGER_ENTRIES:  # counted now, skipped when read back
                if self.on_entry is not None:
                    self.on_entry(output.value)
                headers = [(SEQUENCE_HEADER, str(output.value["sequence"]).encode())]
            encoded = self.codec.encode(output.topic, output.value)
            self.outputs.append((output.topic, output.key, encoded, headers))

    def dead_letter(self, message: Message, reason: str, error: str) -> None:
        letter = dead_letter_of_message(
            message, catalogue.LEDGER_COMMANDS, reason, error, COMPONENT
        )
        metrics.dead_letters.labels(COMPONENT, reason).inc()
        encoded = self.codec.encode(catalogue.DEAD_LETTERS, letter)
        self.outputs.append((catalogue.DEAD_LETTERS, catalogue.LEDGER_COMMANDS, encoded, None))

    def changed_records(self) -> list[tuple[str, AccountRecord | None]]:
        """(key, record or None for a deleted page), in the order they must be written."""
        return [(key, self.working[key]) for key in sorted(self.changed, key=write_order)]


def settled(message: Message) -> bool:
    """The hole before `message` can no longer fill: `message` was written long enough ago."""
    kind, written_ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or written_ms <= 0:
        return False
    return time.time() - written_ms / 1000 > SETTLED_HOLE_S


def apply_batch(
    messages: Iterable[Message],
    store: RecordStore,
    assets: AssetCatalogue,
    codec: Codec,
    auth: RecordAuth,
    holes: HoleTimer,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> Batch:
    """Apply a batch: its records changed in memory, its outputs encoded (not produced)."""
    batch = Batch(store, assets, codec, auth, holes, on_entry)
    for message in messages:
        batch.apply_message(message)
    batch.release_held_payouts()
    return batch
