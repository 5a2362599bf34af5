"""The app-owned confluent-kafka producer agents emit their outputs with.

Faust's own producer is per-message costly and its buffer overflows under batches; agents
produce here and `await flush()` before they write the table records the outputs come
from, so a record is never newer than its outputs (a crash re-emits, never loses).
"""

from __future__ import annotations

import asyncio

from topics.authentication import RecordAuth
from topics.kafka import FLUSHED_BATCH_LINGER_MS, NotAcknowledged, flush, make_producer

POLL_EVERY = 256  # produce calls between two polls of delivery reports


class OutputProducer:
    """Produces to catalogue topics, each record signed (`topics.authentication`);
    `flush` raises unless every output was acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        auth: RecordAuth,
        linger_ms: int = FLUSHED_BATCH_LINGER_MS,
    ):
        self.prefix = prefix
        self.auth = auth
        # delivery reports of failures only: a callback per acknowledged message is not free
        self.producer = make_producer(
            bootstrap,
            **{
                "linger.ms": linger_ms,
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,  # one callback for all: none built per message
            },
        )
        self.failures: list[str] = []
        self.unpolled = 0

    def produce(
        self,
        topic: str,
        key: str,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Produce to a catalogue topic (its name gets the deployment's prefix)."""
        self.produce_to(self.prefix + topic, key, value, partition, headers, signed_as=topic)

    def produce_to(
        self,
        name: str,
        key: str,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        signed_as: str,
    ) -> None:
        """Produce to a topic by its full name (e.g. a table's changelog), authenticated as
        a record of `signed_as` (a catalogue topic, or `authentication.ACCOUNTS_CHANGELOG`)."""
        signature = self.auth.headers(signed_as, key.encode(), value)
        if signature:
            headers = [*(headers or ()), *signature]
        if partition is None:
            partition = -1  # RD_KAFKA_PARTITION_UA: the partitioner chooses
        try:
            self.producer.produce(name, value, key, partition, headers=headers)
        except BufferError:  # the local queue is full: serve it, then once more
            self.producer.poll(0.1)
            self.producer.produce(name, value, key, partition, headers=headers)
        self.unpolled += 1
        if self.unpolled >= POLL_EVERY:
            self.producer.poll(0)
            self.unpolled = 0

    def _delivered(self, error, message) -> None:
        if error is not None:
            self.failures.append(f"{message.topic()}: {error}")

    async def flush(self) -> None:
        if not len(self.producer) and not self.failures:
            return  # nothing in flight, no report waiting: no thread hop
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, flush, self.producer, "the ledger's outputs")
        if self.failures:
            raise NotAcknowledged(f"the ledger's outputs refused: {self.failures[:3]}")
