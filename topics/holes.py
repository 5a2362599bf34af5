"""Reading partitions without skipping records that become visible late.

A broker may let a reader see offset N+k before N..N+k-1 are readable (tansu's memory
engine does, when requests to one partition are in flight at once). A reader that moved
on would never see those records. `HoleGuard` checks that each partition's offsets are
contiguous; on a hole it seeks back to the first missing offset and drops what came after,
so the records are read again once visible. A hole that stays longer than `hole_wait_s`
is taken as real (e.g. transaction markers on a real Kafka cluster) and logged.

`HoleTimer` is the one clock of how long a hole has been waited for; readers differ only
in what they do when it has lasted too long: a view, a tail, intake and the sink go on
past it (logged); the ledger must never skip a command, so it starts again instead
(`streams.ledger.batch`, `streams.ledger.agent`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, Message, TopicPartition

log = logging.getLogger(__name__)

HOLE_WAIT_S = 5.0


class HoleTimer:
    """Since when each hole (any hashable key) has been waited for."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.since: dict[object, float] = {}

    def waited_too_long(self, hole: object, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self.since.setdefault(hole, now) > self.wait_s

    def over(self, hole: object) -> None:
        self.since.pop(hole, None)


class HoleGuard:
    def __init__(self, consumer: Consumer, hole_wait_s: float = HOLE_WAIT_S) -> None:
        self.consumer = consumer
        self.timer = HoleTimer(hole_wait_s)
        self.expected: dict[tuple[str, int], int] = {}
        self.handed_out: dict[tuple[str, int], int] = {}  # what `moved` last returned
        self.holes_waited = 0

    def start_at(self, partitions: Iterable[TopicPartition]) -> None:
        """Record where reading starts (committed or chosen offsets); unknown ones are skipped."""
        for tp in partitions:
            if tp.offset >= 0:
                self.expected[(tp.topic, tp.partition)] = tp.offset
            else:
                self.expected.pop((tp.topic, tp.partition), None)

    def positions(self) -> list[TopicPartition]:
        """Where reading has got to without a hole: the offsets safe to commit."""
        return [TopicPartition(t, p, o) for (t, p), o in self.expected.items()]

    def moved(self) -> list[TopicPartition]:
        """The safe positions that moved since the last call: what a commit after each batch
        needs. (Committing every assigned partition each time is one broker write per
        partition: on tansu over s3rver, seconds per commit, long enough to hold the group's
        heartbeat back past the session timeout.)"""
        moved = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self.expected.items()
            if self.handed_out.get((topic, partition)) != offset
        ]
        self.handed_out.update(((tp.topic, tp.partition), tp.offset) for tp in moved)
        return moved

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.expected.pop((tp.topic, tp.partition), None)
            self.handed_out.pop((tp.topic, tp.partition), None)

    def contiguous(self, messages: list[Message]) -> list[Message]:
        """The messages that continue their partition without a hole, in order."""
        accepted: list[Message] = []
        rewound: set[tuple[str, int]] = set()
        now = time.monotonic()
        for message in messages:
            if message.error():
                continue
            key = (message.topic(), message.partition())
            if key in rewound:
                continue
            expected = self.expected.get(key)
            offset = message.offset()
            if expected is not None and offset < expected:
                continue  # read again after a rewind
            if expected is not None and offset > expected:
                if not self.timer.waited_too_long((*key, expected), now):
                    self.consumer.seek(TopicPartition(key[0], key[1], expected))
                    rewound.add(key)
                    self.holes_waited += 1
                    continue
                log.warning(
                    "offsets %d..%d of %s[%d] never appeared; going on",
                    expected,
                    offset - 1,
                    key[0],
                    key[1],
                )
            self.timer.over((*key, expected))
            self.expected[key] = offset + 1
            accepted.append(message)
        return accepted
