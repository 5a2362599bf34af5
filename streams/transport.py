"""Faust's aiokafka transport, plus hooks after recovery (broker URL `tokengine://`).

Also: Faust fixes aiokafka's fetch wait at 1.5 s, and tansu answers a fetch only when that
wait ends if no data was there when it arrived, which made every hop up to 1.5 s late;
`topics.kafka.OFF_PATH_FETCH_WAIT_MAX_MS` bounds it. Faust's consumer is off the money
path (intake and the ledger's feed read with their own consumers): it fetches bank
notifications for reconciliation, its leader topic, and changelogs while recovering. At
100 ms instead of the money path's 20, an idle worker cost tansu 0.37 core instead of 0.48.

After a rebalance Faust recovers the tables, seeks every stream partition to its committed
offset, then starts fetching. Components that must act on a new assignment only once its
tables are recovered (the ledger's command feed starts at the recovered watermarks)
add a hook to the app's `on_ready` list (`prepare`): it runs there, before anything is
fetched. A topic in the app's `not_fetched` set is assigned (and its tables recovered)
but never fetched by Faust: its partitions stay paused from the assignment on (the
ledger reads its commands itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from topics.kafka import OFF_PATH_FETCH_WAIT_MAX_MS

OnReady = Callable[[Any, Iterable[TP]], Awaitable[None]]  # (Faust consumer, assignment)


def prepare(app: Any) -> None:
    """Give an app the hooks this transport reads: `on_ready` (run after each recovery,
    before fetching) and `not_fetched` (topics, full names, Faust assigns but never fetches)."""
    app.on_ready: list[OnReady] = []
    app.not_fetched: set[str] = set()


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = OFF_PATH_FETCH_WAIT_MAX_MS  # read by its fetcher at start
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _set_active_tps(self, tps: set[TP]) -> set[TP]:  # what Faust fetches, at assignment
        return super()._set_active_tps({tp for tp in tps if tp.topic not in self.app.not_fetched})

    def resume_partitions(self, tps: Iterable[TP]) -> None:  # after recovery, after a pause
        super().resume_partitions({tp for tp in tps if tp.topic not in self.app.not_fetched})

    def verify_event_path(self, now: float, tp: TP) -> None:
        if tp.topic not in self.app.not_fetched:  # else "stream has not started" each minute
            super().verify_event_path(now, tp)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        for on_ready in self.app.on_ready:
            await on_ready(self, self.assignment())


class Transport(driver.Transport):
    Consumer = Consumer


TRANSPORTS.aliases["tokengine"] = "streams.transport:Transport"
