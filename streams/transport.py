"""Faust's aiokafka transport, plus rewinds after recovery (broker URL `tokengine://`).

Also: Faust fixes aiokafka's fetch wait at 1.5 s, and tansu answers a fetch only when that
wait ends if no data was there when it arrived, which made every hop up to 1.5 s late;
`FETCH_MAX_WAIT_MS` bounds it.

After a rebalance Faust recovers the tables, seeks every stream partition to its committed
offset, then starts fetching. A recovered table may be older than the committed offset
(a changelog read short of its end, a crash between commit and write): the ledger then
must start again from its own watermark, not from the commit. Components register a
`rewind` function; its offsets are applied here, before any record is fetched, so nothing
already buffered can race them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

Rewind = Callable[[Iterable[TP]], dict[TP, int]]
REWINDS: list[Rewind] = []
FETCH_MAX_WAIT_MS = 20


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by its fetcher at start
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    rewound: dict[TP, int] = {}

    async def perform_seek(self) -> None:
        await super().perform_seek()
        for rewind in REWINDS:
            for tp, offset in rewind(self.assignment()).items():
                position = self._read_offset.get(tp)
                if position is None or offset < position:
                    await self.seek(tp, offset)


class Transport(driver.Transport):
    Consumer = Consumer


TRANSPORTS.aliases["tokengine"] = "streams.transport:Transport"
