"""Reads a topic without a consumer group: `tail_topic` yields its messages decoded as
JSON lines (a record the engine did not write shown as such), `read_to_end` the engine's
records (`topics.authentication`) only."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from core.config import Settings
from topics import catalogue
from topics.authentication import record_auth
from topics.codec import DecodeError, make_codec
from topics.jsonable import dumps
from topics.kafka import make_reader

POLL_TIMEOUT_S = 0.2


def tail_topic(
    settings: Settings,
    topic: str,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout_s: float | None,
    emit: Callable[[str], None],
) -> int:
    spec = catalogue.spec(topic)
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    auth = record_auth(settings, None)
    consumer = make_reader(settings.kafka, "tokengine-tail")
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    name = spec.full_name(settings.topic_prefix)
    consumer.assign([TopicPartition(name, p, start) for p in range(spec.partitions)])
    count = 0
    last_message = time.monotonic()
    try:
        while max_messages is None or count < max_messages:
            message = consumer.poll(POLL_TIMEOUT_S)
            if message is None or message.error():
                if idle_timeout_s is not None and time.monotonic() - last_message > idle_timeout_s:
                    break
                continue
            last_message = time.monotonic()
            try:
                auth.check_message(topic, message)
                value = codec.decode(topic, message.value())
            except DecodeError as error:
                value = {"undecodable": error.reason, "error": str(error)}
            key = message.key().decode(errors="replace") if message.key() else None
            emit(
                dumps(
                    {
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "key": key,
                        "value": value,
                    }
                )
            )
            count += 1
    finally:
        consumer.close()
    return count


def read_to_end(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[dict]:
    """Every decodable record of a topic, from the oldest to the current end."""
    spec = catalogue.spec(topic)
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    auth = record_auth(settings, None)
    consumer = make_reader(settings.kafka, "tokengine-read", **{"enable.partition.eof": True})
    name = spec.full_name(settings.topic_prefix)
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
    at_end: set[int] = set()
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < spec.partitions and time.monotonic() < deadline:
            message = consumer.poll(POLL_TIMEOUT_S)
            if message is None:
                continue
            if message.error():
                at_end.add(message.partition())
                continue
            try:
                auth.check_message(topic, message)
                records.append(codec.decode(topic, message.value()))
            except DecodeError:
                continue
    finally:
        consumer.close()
    return records
