"""How the engine's plain consumers read: what is there at once, else the first that comes."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition

from tests.helpers import produce_many
from topics import catalogue
from topics.admin import create_topics
from topics.holes import HoleGuard
from topics.kafka import consume_available, make_consumer


def test_consume_available_returns_what_is_there_without_waiting_the_timeout(settings):
    create_topics(settings.kafka, settings.topic_prefix)
    name = settings.topic_prefix + catalogue.LEDGER_COMMANDS
    consumer = make_consumer(settings.kafka, f"{settings.app_id}-probe")
    consumer.assign([TopicPartition(name, p, 0) for p in range(catalogue.ACCOUNT_PARTITIONS)])
    try:
        started = time.monotonic()
        assert consume_available(consumer, 100, 0.5) == []  # nothing there: the whole wait
        assert time.monotonic() - started >= 0.5

        produce_many(settings, catalogue.LEDGER_COMMANDS, [("a", b"x"), ("a", b"y"), ("a", b"z")])
        seen: list[bytes] = []
        started = time.monotonic()
        while len(seen) < 3:
            seen += [m.value() for m in consume_available(consumer, 100, 30.0) if not m.error()]
        # `consumer.consume(100, 30.0)` would have waited the 30 s for a hundred messages
        assert time.monotonic() - started < 10
        assert seen == [b"x", b"y", b"z"]
    finally:
        consumer.close()


def test_a_hole_guard_hands_out_only_the_positions_that_moved(settings):
    """What the intake commits after a batch: the partitions it read, not every assigned one."""
    create_topics(settings.kafka, settings.topic_prefix)
    name = settings.topic_prefix + catalogue.TRANSFER_CREDITS
    consumer = make_consumer(settings.kafka, f"{settings.app_id}-moved")
    starts = []
    for p in range(catalogue.ACCOUNT_PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
        starts.append(TopicPartition(name, p, high))
    consumer.assign(starts)
    holes = HoleGuard(consumer)
    holes.start_at(starts)
    try:
        assert len(holes.moved()) == catalogue.ACCOUNT_PARTITIONS  # where reading starts
        assert holes.moved() == []
        produce_many(settings, catalogue.TRANSFER_CREDITS, [("yan", b"x"), ("yan", b"y")])
        read: list = []
        while len(read) < 2:
            read += holes.contiguous(consume_available(consumer, 100, 30.0))
        (partition,) = {m.partition() for m in read}
        moved = holes.moved()
        assert [(tp.partition, tp.offset) for tp in moved] == [
            (partition, starts[partition].offset + 2)
        ]
        assert holes.moved() == []
    finally:
        consumer.close()
