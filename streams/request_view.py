"""The request-status view behind `GET /api/v1/requests/{id}`.

Reads request-results from the beginning (every partition, no consumer group) in a thread
and keeps the newest result per request id (highest `version`), bounded in size. Each
worker has the whole view, so any worker answers any request id.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import mode
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.app import app, codec, settings
from topics import catalogue
from topics.codec import DecodeError
from topics.holes import HoleGuard

log = logging.getLogger(__name__)

MAX_REQUESTS_KEPT = 1_000_000
POLL_TIMEOUT_S = 0.2
MAX_BATCH_MESSAGES = 1000


class RequestResults:
    def __init__(self, capacity: int = MAX_REQUESTS_KEPT) -> None:
        self.capacity = capacity
        self.results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, result: dict[str, Any]) -> None:
        request_id = result["request_id"]
        with self.lock:
            current = self.results.get(request_id)
            if current is not None and current["version"] > result["version"]:
                return
            if current is not None and current["status"] != "REJECTED" and result["version"] == 0:
                return  # an intake rejection never replaces a ledger decision
            self.results[request_id] = result
            self.results.move_to_end(request_id)
            while len(self.results) > self.capacity:
                self.results.popitem(last=False)

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.results.get(request_id)


view = RequestResults()


@app.service
class RequestView(mode.Service):
    """Feeds `view` from the request-results topic for the worker's lifetime."""

    stopping: threading.Event
    thread: threading.Thread

    async def on_start(self) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="request-view", daemon=True)
        self.thread.start()

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.loop.run_in_executor(None, self.thread.join, 10)

    def run(self) -> None:
        spec = catalogue.spec(catalogue.REQUEST_RESULTS)
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka,
                "group.id": "request-view",
                "enable.auto.commit": False,
            }
        )
        name = spec.full_name(settings.topic_prefix)
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
        holes = HoleGuard(consumer)  # request-results has many writers
        holes.start_at([TopicPartition(name, p, 0) for p in range(spec.partitions)])
        try:
            while not self.stopping.is_set():
                for message in holes.contiguous(
                    consumer.consume(MAX_BATCH_MESSAGES, POLL_TIMEOUT_S)
                ):
                    try:
                        view.add(codec.decode(catalogue.REQUEST_RESULTS, message.value()))
                    except DecodeError as error:
                        log.warning("request view: undecodable result: %s", error)
        finally:
            consumer.close()
