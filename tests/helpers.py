"""Test helpers that talk to the real broker: produce encoded records, read topics back."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tokengine.config import Settings
from topics import catalogue
from topics.codec import DecodeError, SingleObjectCodec
from topics.kafka import make_producer

codec = SingleObjectCodec()


def produce(settings: Settings, topic: str, key: str, value: bytes | dict[str, Any]) -> None:
    producer = make_producer(settings.kafka)
    data = value if isinstance(value, bytes) else codec.encode(topic, value)
    producer.produce(settings.topic_prefix + topic, data, key.encode())
    assert producer.flush(30) == 0


def produce_many(settings: Settings, topic: str, items: list[tuple[str, bytes | dict]]) -> None:
    producer = make_producer(settings.kafka, **{"linger.ms": 20})
    for key, value in items:
        data = value if isinstance(value, bytes) else codec.encode(topic, value)
        producer.produce(settings.topic_prefix + topic, data, key.encode())
        producer.poll(0)
    assert producer.flush(60) == 0


def read_topic(settings: Settings, topic: str, *, until_count: int | None = None,
               until=None, timeout_s: float = 60.0, decode: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Read a topic from the start until `until_count` messages (or `until(records)`) hold.

    Counts by reading, not by end offsets (tansu's can lag what is readable).
    """
    spec = catalogue.spec(topic)
    consumer = Consumer({"bootstrap.servers": settings.kafka, "group.id": "test-reader",
                         "enable.auto.commit": False})  # fmt: skip
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
                records.append({"key": message.key(), "value": value,
                                "partition": message.partition(), "offset": message.offset()})  # fmt: skip
    finally:
        consumer.close()
    return records


def values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record["value"] for record in records]
