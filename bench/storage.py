"""The embedded broker's storage: tansu on `memory://` against `s3://` over s3rver (what
`tokengine up` keeps its Kafka log on), on the same records, in one run.

Per storage: records produced with `acks=all` per second (batches flushed as the engine
flushes them), records read back per second, and, for s3 only (memory forgets at a
restart), whether every record and a consumer group's committed offsets are there after a
broker restart, and how long the restart took until the broker answered metadata. Then
the engine itself on each (one worker, the ledger bench's deposits; the broker's cores
include s3rver's), and how long a worker restarted on that ledger takes to be ready (its
tables recovered from their changelogs).
`python -m bench storage`; BENCH_STORAGE_RECORDS sets the raw count (default 50,000).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from bench.common import (
    EVENTS,
    count_records,
    deposits,
    engine_input_producer,
    isolated_settings,
    produce_all,
    report,
)
from bench.ledger import engine
from core.config import Settings
from tests.conftest import Worker
from tokengine.processes import ManagedProcess, free_port
from tokengine.services import EmbeddedServices, start_kafka_log_store, start_tansu
from topics import catalogue
from topics.kafka import flush, make_admin, make_consumer, make_producer, make_reader

RECORDS = int(os.environ.get("BENCH_STORAGE_RECORDS", "50000"))
PARTITIONS = 8
BATCH = 2_000  # records per flush, as the ledger flushes a batch of outputs
VALUE = b"x" * 300  # about one ledger entry
TOPIC = "bench-storage"
GROUP = "bench-storage-group"


def storage(settings: Settings) -> None:
    broker_only()
    rates = {kind: engine_on(settings, kind) for kind in ("memory", "s3")}
    report("engine_s3_vs_memory", events_per_s_ratio=f"{rates['s3'] / rates['memory']:.2f}")


def engine_on(settings: Settings, kind: str) -> float:
    """The ledger bench's engine run on a broker of this storage, then a worker's restart."""
    state_dir = Path(tempfile.mkdtemp(prefix="tokengine-bench-")) if kind == "s3" else None
    services = EmbeddedServices(
        settings.with_overrides(kafka=None),
        want_postgres=False,
        want_eth=False,
        state_dir=state_dir,
    )
    try:
        with services as on_broker:
            rate, cores = engine(on_broker, 1)
            recovery_s = restart_time(on_broker)
        report(
            f"engine_1_worker_on_{kind}",
            events_per_s=round(rate),
            worker_cores=cores["workers"],
            broker_cores=cores["broker"],
            cpu_us_per_event=round((cores["workers"] + cores["broker"]) / rate * 1e6),
            restart_ready_s=f"{recovery_s:.1f}",
        )
        return rate
    finally:
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)


def restart_time(settings: Settings) -> float:
    """Seconds until a worker restarted on a ledger of EVENTS deposits over ACCOUNTS
    accounts answers ready (its tables recovered from their changelogs)."""
    isolated = isolated_settings(settings, "restart")
    worker = Worker(isolated, free_port(), 0).start()
    try:
        produce_all(
            isolated.kafka,
            isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS,
            deposits(EVENTS, "r"),
            engine_input_producer(isolated, catalogue.CHAIN_OBSERVATIONS, **{"linger.ms": 20}),
        )
        count_records(isolated, catalogue.BALANCE_UPDATES, EVENTS, 600)
    finally:
        worker.stop()
    started = time.monotonic()
    again = Worker(isolated, free_port(), 0).start()
    try:
        return time.monotonic() - started
    finally:
        again.stop()


def broker_only() -> None:
    for kind in ("memory", "s3"):
        workdir = Path(tempfile.mkdtemp(prefix=f"tokengine-bench-{kind}-"))
        processes: list[ManagedProcess] = []
        try:
            log_store = None
            if kind == "s3":
                log_store, store = start_kafka_log_store(workdir)
                processes.append(store)
            bootstrap, broker = start_tansu(workdir, log_store)
            processes.append(broker)
            produced_per_s = produce(bootstrap)
            read_per_s, ends = read_back(bootstrap)
            commit(bootstrap, ends)
            figures: dict[str, object] = {
                "produced_per_s": f"{produced_per_s:.0f}",
                "read_per_s": f"{read_per_s:.0f}",
            }
            if kind == "s3":
                broker.stop()
                started = time.monotonic()
                bootstrap, broker = start_tansu(workdir, log_store)
                processes.append(broker)
                make_admin(bootstrap).list_topics(timeout=30)
                restart_s = time.monotonic() - started
                _, ends_after = read_back(bootstrap)
                kept = sum(ends_after.values())
                offsets_kept = committed(bootstrap) == ends
                figures |= {
                    "restart_s": f"{restart_s:.2f}",
                    "kept": f"{kept}/{RECORDS}",
                    "group_offsets_kept": offsets_kept,
                }
            report(f"tansu_{kind}_storage", **figures)
        finally:
            for process in reversed(processes):
                process.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def produce(bootstrap: str) -> float:
    from confluent_kafka.admin import NewTopic

    admin = make_admin(bootstrap)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result()
    producer = make_producer(bootstrap, **{"linger.ms": 50})
    started = time.monotonic()
    for n in range(RECORDS):
        producer.produce(TOPIC, VALUE, str(n).encode())
        if n % BATCH == BATCH - 1:
            flush(producer, "bench storage")
    flush(producer, "bench storage")
    return RECORDS / (time.monotonic() - started)


def read_back(bootstrap: str) -> tuple[float, dict[int, int]]:
    """(records read per second, {partition: offset after its last record})."""
    reader = make_reader(bootstrap, "bench-storage-reader")
    reader.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    ends = {p: reader.get_watermark_offsets(TopicPartition(TOPIC, p))[1] for p in range(PARTITIONS)}
    seen = dict.fromkeys(range(PARTITIONS), 0)
    started = time.monotonic()
    deadline = started + 120
    while any(seen[p] < ends[p] for p in seen) and time.monotonic() < deadline:
        for message in reader.consume(10_000, 0.5):
            if not message.error():
                seen[message.partition()] = message.offset() + 1
    elapsed = time.monotonic() - started
    reader.close()
    return sum(seen.values()) / max(elapsed, 1e-9), seen


def commit(bootstrap: str, ends: dict[int, int]) -> None:
    consumer = make_consumer(bootstrap, GROUP)
    offsets = [TopicPartition(TOPIC, p, offset) for p, offset in ends.items()]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()


def committed(bootstrap: str) -> dict[int, int]:
    consumer = make_consumer(bootstrap, GROUP)
    found = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], 30)
    consumer.close()
    return {tp.partition: tp.offset for tp in found}
