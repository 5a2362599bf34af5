"""The embedded Kafka log (tansu on s3:// over s3rver) keeps every acknowledged record when
the broker starts again: a broker that does not know a partition yet must not write over
it (s3rver honours S3's conditional writes: `tokengine/atomic_s3rver.cjs`)."""

from __future__ import annotations

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tokengine.processes import ManagedProcess
from tokengine.services import start_kafka_log_store, start_tansu
from topics.kafka import make_reader

TOPIC = "kept"


def produce(bootstrap: str, values: list[bytes]) -> list[int]:
    """Each value produced alone and acknowledged (acks=all): the offsets the broker gave."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    offsets: list[int] = []

    def acknowledged(error, message) -> None:
        if error is not None:
            raise AssertionError(f"produce failed: {error}")
        offsets.append(message.offset())

    for value in values:
        producer.produce(TOPIC, value, on_delivery=acknowledged)
        if producer.flush(30):
            raise AssertionError("a record was not acknowledged in 30 s")
    return offsets


def read_all(bootstrap: str, expected: int) -> list[tuple[int, bytes]]:
    reader = make_reader(bootstrap, "kept-reader")
    try:
        reader.assign([TopicPartition(TOPIC, 0, 0)])
        seen: list[tuple[int, bytes]] = []
        for _ in range(20):
            seen += [(m.offset(), m.value()) for m in reader.consume(10, 1) if not m.error()]
            if len(seen) >= expected:
                break
        return seen
    finally:
        reader.close()


def test_a_restarted_broker_appends_after_the_records_it_acknowledged(tmp_path) -> None:
    store_url, store = start_kafka_log_store(tmp_path)
    tansu: ManagedProcess | None = None
    try:
        bootstrap, tansu = start_tansu(tmp_path, log_store=store_url)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        before = produce(bootstrap, [b"a", b"b", b"c"])
        tansu.kill()  # SIGKILL: nothing flushed on the way out
        tansu.process.wait(10)

        bootstrap, tansu = start_tansu(tmp_path, log_store=store_url)
        # produced before anything reads the partition: the broker has not loaded its watermark
        after = produce(bootstrap, [b"d"])

        assert before + after == [0, 1, 2, 3]
        assert read_all(bootstrap, 4) == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
    finally:
        if tansu is not None:
            tansu.stop()
        store.stop()
