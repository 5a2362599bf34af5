"""The ledger's command feed: ledger-commands read in bulk, for the partitions Faust assigned.

Faust keeps what it is good at: group membership, partition assignment, and the recovery
of the `accounts` table for the partitions this worker owns. Its per-message fetch path
(about 27 event-loop callbacks and 5 tasks a message) cost more than the ledger's own
work, so the ledger does not take its commands from a Faust stream: Faust's fetching of
ledger-commands is paused, and this feed reads the same partitions with a confluent-kafka
consumer (`assign`, no group, no commits: where to start is each partition's watermark
in the recovered table).

`streams.ledger` assigns the feed after Faust has recovered the table and revokes it when
Faust revokes the partitions. `lock` is held while a batch is read and applied, so an
(un)assignment waits for the batch in progress and never changes the consumer under it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from confluent_kafka import Consumer, Message, TopicPartition

from topics.kafka import consume_available, make_consumer

log = logging.getLogger(__name__)


class CommandFeed:
    def __init__(self, bootstrap: str, topic: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic  # full name
        self.group_id = group_id  # never joined (assign only) nor committed to
        self.consumer: Consumer | None = None  # made at the first assignment
        self.thread = concurrent.futures.ThreadPoolExecutor(1, "ledger-feed")
        self.reading: concurrent.futures.Future | None = None  # a `consume` in `thread`
        self.lock = asyncio.Lock()
        self.partitions: frozenset[int] = frozenset()
        self.assigned = asyncio.Event()

    async def assign(self, starts: dict[int, int]) -> None:
        """Read these partitions from these offsets (and no others), after the batch in progress."""
        async with self.lock:
            self.assign_now(starts)

    def assign_now(self, starts: dict[int, int]) -> None:
        """`assign` for the holder of `lock`."""
        if self.consumer is None:
            self.consumer = make_consumer(self.bootstrap, self.group_id)
        self.consumer.assign(
            [TopicPartition(self.topic, partition, offset) for partition, offset in starts.items()]
        )
        self.partitions = frozenset(starts)
        if starts:
            self.assigned.set()
        else:
            self.assigned.clear()
        log.info("ledger feed: reading %s", dict(sorted(starts.items())))

    async def read(self, max_messages: int, timeout_s: float) -> list[Message]:
        """Up to `max_messages` commands, waiting at most `timeout_s` for them (hold `lock`)."""
        if self.consumer is None:
            raise RuntimeError("read before the first assignment")
        self.reading = self.thread.submit(consume_available, self.consumer, max_messages, timeout_s)
        messages = await asyncio.wrap_future(self.reading)
        good = []
        for message in messages:
            if message.error():
                log.warning("ledger feed: %s", message.error())
            elif message.partition() in self.partitions:
                good.append(message)
        return good

    def lag(self) -> int:
        """Commands on the broker not yet read, over the assigned partitions (0 before any)."""
        consumer = self.consumer
        if consumer is None or not self.partitions:
            return 0
        total = 0
        positions = consumer.position(
            [TopicPartition(self.topic, partition) for partition in self.partitions]
        )
        for tp in positions:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                total += max(0, high - tp.offset)
        return total

    async def close(self) -> None:
        """Close the consumer, once a `consume` cancelled in its thread has returned."""
        if self.reading is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, concurrent.futures.wait, [self.reading]
            )
        self.thread.shutdown()
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
