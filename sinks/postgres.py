"""The Postgres sink: ledger and reconciliation topics into Postgres, exactly once.

One consumer group (`<app id>-sink`) reads the topics of `sinks.rows.TOPICS`. Each batch
and the offsets it reaches are written in one Postgres transaction (`sink_offsets`); on
assignment the consumer starts from the offsets stored there, never from Kafka's. The
rows are idempotent upserts besides, so even a replay from offset 0 changes nothing.

Faults: Postgres unreachable -> the batch is retried with backoff (the consumer paused,
so it stays in its group) and nothing is skipped; an event whose rows Postgres refuses
(a constraint, a value it cannot store: `IntegrityError`, `DataError`) or that cannot be
mapped to rows at all -> the batch is replayed event by event under savepoints, the
offending event goes to the dead-letter topic with the reason, and the sink goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from core.assets import load_assets
from core.config import Settings
from core.reasons import Reason
from sinks.rows import REFRESH_EMI_ACCOUNTS, REFRESHING_TOPICS, STATEMENTS, TOPICS, rows
from topics import catalogue
from topics.authentication import SigningProducer, produce_refused_alert, record_auth
from topics.codec import DecodeError, make_codec
from topics.dead_letters import dead_letter
from topics.holes import HoleGuard
from topics.kafka import NotAcknowledged, flush, make_consumer, make_producer
from topics.metrics import dead_letters

log = logging.getLogger(__name__)

COMPONENT = "postgres-sink"
MAX_BATCH_MESSAGES = 5000
POLL_TIMEOUT_S = 0.1
MAX_BACKOFF_S = 10.0


@dataclass(frozen=True)
class Problem:
    """Why an event goes to the dead letters: a reason code and the error in words."""

    reason: str
    error: str


class UnmappableEvent(ValueError):
    """An event whose rows cannot be built (a field missing or of the wrong kind)."""


# what one event's rows can be refused for: dead-lettered, the sink goes on
REFUSED_ROWS = (psycopg.IntegrityError, psycopg.DataError, UnmappableEvent)


@dataclass(frozen=True)
class Event:
    topic: str  # catalogue name
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    value: dict[str, Any] | None  # None: undecodable (goes to dead letters)
    problem: Problem | None = None  # why it is undecodable
    timestamp_ms: int = 0  # the broker's timestamp, for the event-to-row lag


class PostgresSink:
    def __init__(self, settings: Settings) -> None:
        if not (settings.kafka and settings.database_url):
            raise ValueError("the Postgres sink needs TOKENGINE_KAFKA and TOKENGINE_DATABASE_URL")
        self.settings = settings
        self.group = f"{settings.app_id}-sink"
        self.codec = make_codec(settings.schema_registry, settings.topic_prefix)
        self.currencies = {
            code: asset.currency
            for code, asset in load_assets(settings.assets_file).assets.items()
            if asset.currency
        }
        self.stopping = threading.Event()
        self.conn: psycopg.Connection | None = None
        self.auth = record_auth(settings, catalogue.SINK)
        self.producer = SigningProducer(
            make_producer(settings.kafka), settings.topic_prefix, self.auth
        )
        self.consumer: Consumer = make_consumer(
            settings.kafka, self.group, **{"enable.partition.eof": False}
        )
        self.holes = HoleGuard(self.consumer)
        self.rows_written = 0
        self.batches = 0
        self.lags_ms: deque[float] = deque(maxlen=100_000)  # event on topic -> row committed

    # -- connection ----------------------------------------------------------------------

    def connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.settings.database_url, connect_timeout=5, autocommit=True
            )
        return self.conn

    def stored_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        names = {tp.topic for tp in partitions}
        stored: dict[tuple[str, int], int] = {}
        with self.connection().cursor() as cursor:
            cursor.execute(
                "SELECT topic, partition, next_offset FROM sink_offsets"
                " WHERE consumer_group = %s AND topic = ANY(%s)",
                (self.group, list(names)),
            )
            for topic, partition, offset in cursor.fetchall():
                stored[(topic, partition)] = offset
        return [
            TopicPartition(tp.topic, tp.partition, stored.get((tp.topic, tp.partition), 0))
            for tp in partitions
        ]

    # -- the loop ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        positioned = self.with_retry(lambda: self.stored_offsets(partitions))
        consumer.assign(positioned)
        self.holes.start_at(positioned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.holes.forget(partitions)

    def run(self) -> None:
        names = [catalogue.spec(t).full_name(self.settings.topic_prefix) for t in TOPICS]
        self.consumer.subscribe(names, on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self.stopping.is_set():
                messages = self.consumer.consume(MAX_BATCH_MESSAGES, POLL_TIMEOUT_S)
                accepted = self.holes.contiguous(messages)
                if accepted:
                    self.write([self.decode(m) for m in accepted])
        finally:
            self.consumer.close()
            if self.conn is not None:
                self.conn.close()

    def stop(self) -> None:
        self.stopping.set()

    def decode(self, message) -> Event:
        topic = catalogue.short_name(message.topic(), self.settings.topic_prefix)
        try:  # a record the engine did not write is never materialised
            self.auth.check_message(topic, message)
            value, problem = self.codec.decode(topic, message.value()), None
        except DecodeError as error:
            value, problem = None, Problem(error.reason, str(error))
        return Event(
            topic,
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            value,
            problem,
            message.timestamp()[1],
        )

    # -- writing -------------------------------------------------------------------------

    def write(self, events: list[Event]) -> None:
        self.with_retry(lambda: self.write_batch(events))
        self.batches += 1
        committed_ms = time.time() * 1000
        self.lags_ms.extend(committed_ms - e.timestamp_ms for e in events if e.timestamp_ms > 0)

    def with_retry(self, attempt):
        """Run `attempt` until Postgres answers; the consumer stays in its group meanwhile."""
        backoff = 0.2
        while True:
            try:
                return attempt()
            except psycopg.OperationalError as error:
                log.warning("postgres unavailable (%s); retrying in %.1f s", error, backoff)
                if self.conn is not None:
                    self.conn.close()
                assignment = self.consumer.assignment()
                if assignment:
                    self.consumer.pause(assignment)
                deadline = time.monotonic() + backoff
                while time.monotonic() < deadline and not self.stopping.is_set():
                    self.consumer.poll(0.1)  # serves heartbeats; paused: returns nothing
                if assignment:
                    self.consumer.resume(assignment)
                if self.stopping.is_set():
                    raise
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    def write_batch(self, events: list[Event]) -> None:
        conn = self.connection()
        try:
            with conn.transaction():
                self.apply(conn, [e for e in events if e.value is not None])
                letters = [(e, e.problem) for e in events if e.problem]
                self.finish(conn, events, letters)
        except REFUSED_ROWS as error:
            log.warning("batch refused (%s); applying event by event", str(error)[:200])
            with conn.transaction():
                letters = []
                for event in events:
                    if event.problem:
                        letters.append((event, event.problem))
                        continue
                    try:
                        with conn.transaction():  # a savepoint per event
                            self.apply(conn, [event])
                    except REFUSED_ROWS as refused:
                        letters.append((event, Problem(refused_reason(refused), str(refused))))
                self.finish(conn, events, letters)

    def apply(self, conn: psycopg.Connection, events: list[Event]) -> None:
        grouped: dict[str, list[tuple]] = defaultdict(list)
        for event in events:
            try:
                mapped = list(rows(event.topic, event.value, self.currencies))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise UnmappableEvent(f"{type(error).__name__}: {error}") from error
            for statement, params in mapped:
                grouped[statement].append(params)
        with conn.cursor() as cursor:
            for statement in STATEMENTS:  # dependency order
                if grouped.get(statement):
                    cursor.executemany(STATEMENTS[statement], grouped[statement])
                    self.rows_written += len(grouped[statement])
            if any(event.topic in REFRESHING_TOPICS for event in events):
                cursor.execute(REFRESH_EMI_ACCOUNTS)

    def finish(self, conn, events: list[Event], letters: list[tuple[Event, Problem]]) -> None:
        """Dead letters out (acknowledged), then the offsets, in the batch's transaction."""
        for event, problem in letters:
            self.dead_letter(event, problem)
        if letters:
            try:
                flush(self.producer, "the sink's dead letters")
            except NotAcknowledged as error:  # retried, like Postgres being away
                raise psycopg.OperationalError(str(error)) from error
        reached: dict[tuple[str, int], int] = {}
        for event in events:
            key = (
                catalogue.spec(event.topic).full_name(self.settings.topic_prefix),
                event.partition,
            )
            reached[key] = max(reached.get(key, 0), event.offset + 1)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition)"
                " DO UPDATE SET next_offset = GREATEST(sink_offsets.next_offset,"
                " EXCLUDED.next_offset)",
                [
                    (self.group, topic, partition, offset)
                    for (topic, partition), offset in reached.items()
                ],
            )

    def dead_letter(self, event: Event, problem: Problem) -> None:
        letter = dead_letter(
            source_topic=event.topic,
            source_partition=event.partition,
            source_offset=event.offset,
            key=event.key,
            value=event.raw,
            reason=problem.reason,
            error=problem.error,
            component=COMPONENT,
        )
        dead_letters.labels(COMPONENT, problem.reason).inc()
        self.producer.produce(
            self.settings.topic_prefix + catalogue.DEAD_LETTERS,
            self.codec.encode(catalogue.DEAD_LETTERS, letter),
            event.topic.encode(),
        )
        if problem.reason == Reason.UNAUTHENTICATED:
            source = (event.topic, event.partition, event.offset)
            prefix = self.settings.topic_prefix
            produce_refused_alert(
                self.producer, prefix, self.codec, source, problem.error, COMPONENT
            )


def refused_reason(error: Exception) -> str:
    if isinstance(error, psycopg.IntegrityError):
        return Reason.CONSTRAINT_VIOLATION
    return Reason.INVALID_VALUE if isinstance(error, psycopg.DataError) else Reason.UNMAPPABLE_EVENT


def run_sink(settings: Settings) -> None:
    """`tokengine sink`: migrate, then write until SIGTERM/SIGINT."""
    import signal

    from core.secrets import install_log_redaction, settings_secrets
    from sinks.migrate import migrate

    install_log_redaction(settings_secrets(settings), settings.log_level)
    backoff = 0.2
    while True:  # Postgres may be starting or restarting: wait for it, do not exit
        try:
            migrate(settings.database_url)
            break
        except psycopg.OperationalError as error:
            log.warning("postgres unavailable at start (%s); retrying in %.1f s", error, backoff)
            time.sleep(backoff)
            backoff = min(MAX_BACKOFF_S, backoff * 2)
    sink = PostgresSink(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sink.stop())
    sink.run()
