"""Whole-topic views: a thread that reads topics from offset 0 and folds every record.

A view has no consumer group: every process that holds one sees every partition, so any
worker can answer any query. Reading goes through `HoleGuard` (records that become
visible late are not skipped). `wait_caught_up()` blocks until the view has read
everything that was on the topics when it was called, for read-your-writes answers.
A view fetches each partition at most every `OFF_PATH_FETCH_WAIT_MAX_MS` (tansu holds an
empty fetch that long; a busy partition waits that long between fetches), so it lags by
at most about that. `folded` lets an owner skip, undecoded, records it already folded
another way (the ledger view: the worker's own entries). A record the engine did not write
(`topics.authentication`: intake or the topic's consumer reports it), one that cannot be
decoded, or whose fold raises, is logged and skipped: no record stops a view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from topics import catalogue
from topics.authentication import RecordAuth
from topics.codec import Codec, DecodeError
from topics.holes import HoleGuard
from topics.kafka import OFF_PATH_FETCH_WAIT_MAX_MS, make_reader, paced_fetching

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.05
MAX_BATCH_MESSAGES = 5000

Fold = Callable[[str, dict[str, Any]], None]  # (catalogue topic name, decoded value)
Folded = Callable[[Message], bool]  # True: the record was folded already, skip it undecoded


class TopicView:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        auth: RecordAuth,
        topics: Iterable[str],
        fold: Fold,
        name: str,
        partitions: dict[str, int] | None = None,
        folded: Folded | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.codec = codec
        self.auth = auth
        self.topics = tuple(topics)
        self.fold = fold
        self.folded = folded or (lambda _message: False)
        self.name = name
        self.partition_counts = {
            t: (partitions or {}).get(t, catalogue.spec(t).partitions) for t in self.topics
        }
        self.lock = threading.Lock()  # held while folding: readers take it too
        self.stopping = threading.Event()
        self.positions: dict[tuple[str, int], int] = {}
        self.progress = threading.Condition()
        self.unfolded = 0  # records whose fold raised (logged, skipped)
        self.thread = threading.Thread(target=self._run, name=f"view-{name}", daemon=True)

    def start(self) -> TopicView:
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)

    def wait_caught_up(self, timeout_s: float = 10.0) -> bool:
        """True once everything on the topics now has been folded."""
        ends = self._end_offsets()
        deadline = time.monotonic() + timeout_s
        with self.progress:
            while not all(self.positions.get(tp, 0) >= end for tp, end in ends.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.progress.wait(remaining)
        return True

    def _partitions(self) -> list[TopicPartition]:
        return [
            TopicPartition(catalogue.spec(t).full_name(self.prefix), p, OFFSET_BEGINNING)
            for t in self.topics
            for p in range(self.partition_counts[t])
        ]

    def _end_offsets(self) -> dict[tuple[str, int], int]:
        consumer = make_reader(self.bootstrap, self.name)
        try:
            ends = {}
            for tp in self._partitions():
                _, high = consumer.get_watermark_offsets(tp, timeout=5)
                ends[(tp.topic, tp.partition)] = high
            return ends
        finally:
            consumer.close()

    def _run(self) -> None:
        paced = paced_fetching(OFF_PATH_FETCH_WAIT_MAX_MS)
        consumer = make_reader(self.bootstrap, self.name, **paced)
        partitions = self._partitions()
        consumer.assign(partitions)
        holes = HoleGuard(consumer)
        holes.start_at([TopicPartition(tp.topic, tp.partition, 0) for tp in partitions])
        try:
            while not self.stopping.is_set():
                messages = consumer.consume(MAX_BATCH_MESSAGES, POLL_TIMEOUT_S)
                accepted = holes.contiguous(messages)
                with self.lock:
                    for message in accepted:
                        if self.folded(message):
                            continue
                        topic = catalogue.short_name(message.topic(), self.prefix)
                        try:
                            self.auth.check_message(topic, message)
                            value = self.codec.decode(topic, message.value())
                        except DecodeError as error:
                            log.warning("view %s: record skipped: %s", self.name, error)
                            continue
                        try:
                            self.fold(topic, value)
                        except Exception:  # one record must not stop the view for good
                            self.unfolded += 1
                            log.exception(
                                "view %s: record at %s[%d]@%d not folded",
                                self.name,
                                topic,
                                message.partition(),
                                message.offset(),
                            )
                with self.progress:
                    for tp in holes.positions():
                        self.positions[(tp.topic, tp.partition)] = tp.offset
                    self.progress.notify_all()
        except Exception:
            log.exception("view %s stopped", self.name)
            raise
        finally:
            consumer.close()
