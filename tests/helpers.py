"""Test helpers that talk to the real broker: produce encoded records, read topics back."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from core.config import Settings
from tests.record_auth import engine_signer
from topics import catalogue
from topics.authentication import SigningProducer, record_auth
from topics.codec import DecodeError, SingleObjectCodec
from topics.holes import HoleGuard
from topics.kafka import make_producer

codec = SingleObjectCodec()


def producer_for(settings: Settings, topic: str, signed: bool = True, **extra: Any):
    """A producer for `topic`: signing as the first process allowed to write it (as the
    engine would), or, `signed=False`, as an outsider (a forger) does."""
    producer = make_producer(settings.kafka, **extra)
    if not signed:
        return producer
    auth = record_auth(settings, engine_signer(topic))
    return SigningProducer(producer, settings.topic_prefix, auth)


def produce(
    settings: Settings,
    topic: str,
    key: str,
    value: bytes | dict[str, Any],
    signed: bool = True,
) -> None:
    producer = producer_for(settings, topic, signed)
    data = value if isinstance(value, bytes) else codec.encode(topic, value)
    producer.produce(settings.topic_prefix + topic, data, key.encode())
    assert producer.flush(30) == 0


def produce_many(settings: Settings, topic: str, items: list[tuple[str, bytes | dict]]) -> None:
    producer = producer_for(settings, topic, True, **{"linger.ms": 20})
    for key, value in items:
        data = value if isinstance(value, bytes) else codec.encode(topic, value)
        producer.produce(settings.topic_prefix + topic, data, key.encode())
        producer.poll(0)
    assert producer.flush(60) == 0


def read_topic(
    settings: Settings,
    topic: str,
    *,
    until_count: int | None = None,
    until=None,
    timeout_s: float = 60.0,
    decode: bool = True,
) -> list[dict[str, Any]]:
    """Read a topic from the start until `until_count` messages (or `until(records)`) hold.

    Counts by reading, not by end offsets (tansu's can lag what is readable).
    """
    spec = catalogue.spec(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka,
            "group.id": "test-reader",
            "enable.auto.commit": False,
        }
    )
    name = spec.full_name(settings.topic_prefix)
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            done = (until_count is not None and len(records) >= until_count) or (
                until is not None and until(records)
            )
            if done:
                break
            for message in consumer.consume(1000, 0.2):
                if message.error():
                    continue
                value = message.value()
                if decode:
                    try:
                        value = codec.decode(topic, value)
                    except DecodeError as error:
                        value = {"undecodable": error.reason}
                records.append(
                    {
                        "key": message.key(),
                        "value": value,
                        "partition": message.partition(),
                        "offset": message.offset(),
                    }
                )
    finally:
        consumer.close()
    return records


FIRST_FETCH_S = 5.0


def read_all(settings: Settings, topic: str, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    """Every record of a topic nobody writes to any more: read until `quiet_s` passes with
    nothing new (a fixed 3 s read undercounted a 100,000-record topic on a busy machine),
    and at least FIRST_FETCH_S before a topic is taken as empty (a fresh consumer's first
    fetch can take over a second on a busy broker)."""
    seen = {"count": -1, "since": time.monotonic()}

    def quiet(records: list[dict[str, Any]]) -> bool:
        if len(records) != seen["count"]:
            seen["count"], seen["since"] = len(records), time.monotonic()
        needed = quiet_s if records else max(quiet_s, FIRST_FETCH_S)
        return time.monotonic() - seen["since"] >= needed

    return read_topic(settings, topic, until=quiet, timeout_s=300)


def values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record["value"] for record in records]


def produce_encoded(settings: Settings, messages: list[tuple[str, str, bytes]]) -> None:
    """Produce already-encoded (topic, key, value) messages in order (signed as the engine)."""
    raw = make_producer(settings.kafka, **{"linger.ms": 20})
    signing = {
        signer: SigningProducer(raw, settings.topic_prefix, record_auth(settings, signer))
        for signer in catalogue.SIGNING_PROCESSES
    }
    for topic, key, value in messages:
        producer = signing[engine_signer(topic)]
        while True:
            try:
                producer.produce(settings.topic_prefix + topic, value, key.encode())
                break
            except BufferError:
                raw.poll(0.05)
        raw.poll(0)
    assert raw.flush(120) == 0


class TopicReader:
    """Reads a topic from the start, incrementally: poll until a condition holds."""

    def __init__(self, settings: Settings, topic: str) -> None:
        spec = catalogue.spec(topic)
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka,
                "group.id": "test-reader",
                "enable.auto.commit": False,
            }
        )
        name = spec.full_name(settings.topic_prefix)
        self.consumer.assign(
            [TopicPartition(name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
        )
        self.holes = HoleGuard(self.consumer)
        self.holes.start_at([TopicPartition(name, p, 0) for p in range(spec.partitions)])
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float = 0.2) -> int:
        messages = self.consumer.consume(5000, seconds)
        for message in self.holes.contiguous(messages):
            self.records.append(codec.decode(self.topic, message.value()))
        return len(messages)

    def until(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} ({len(self.records)} read)")
            self.poll()

    def close(self) -> None:
        self.consumer.close()


def latest_by(records: list[dict[str, Any]], *fields: str) -> dict[tuple, dict[str, Any]]:
    """The newest record (highest `version`) per key made of `fields`."""
    newest: dict[tuple, dict[str, Any]] = {}
    for record in records:
        key = tuple(record[f] for f in fields)
        if key not in newest or record["version"] >= newest[key]["version"]:
            newest[key] = record
    return newest
