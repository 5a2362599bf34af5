"""What every benchmark shares: the figures' format, the event builders, the senders and
readers that pace themselves, isolated topics and databases, and CPU accounting."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from core.config import Settings
from tests.conftest import ASSETS_FILE
from tests.ledger_inputs import observation
from tests.processes import descendants
from topics import catalogue
from topics.admin import create_topics
from topics.codec import SingleObjectCodec
from topics.kafka import FETCH_WAIT_MAX_MS, flush, make_producer, paced_fetching

EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))


ACCOUNTS = 10_000


# latency runs send at a fixed rate, waking every 2 ms to send what is due: sending each
# message at its own instant (a spinning wait, a request each) took 0.6 core of this
# 2-core machine from the engine it measured
SEND_TICK_S = 0.002


# the latency run's sender stands for upstream producers and batches as a busy one would:
# with the engine's 5 ms linger it sent about one record per partition per request, and
# tansu spends about 0.25 ms of CPU per partition in a produce request (0.4 core at
# 1,500/s, on the cores the engine runs on). Its linger still counts in the latency.
SENDER_LINGER_MS = 20


codec = SingleObjectCodec()


def report(label: str, **figures: object) -> None:
    print(label, " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def deposits(n: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        account = f"b{i % ACCOUNTS:05d}"
        record = observation(account, "1", f"0x{tag}{i:08d}")
        out.append((account, codec.encode(catalogue.CHAIN_OBSERVATIONS, record)))
    return out


def engine_input_producer(settings: Settings, topic: str, **extra: Any) -> Any:
    """A producer for the catalogue topic `topic` that signs as the engine process writing
    it does (every input but the request topics is checked: an unsigned one is refused)."""
    from tests.helpers import producer_for

    return producer_for(settings, topic, **extra)


def produce_all(
    bootstrap: str, topic: str, items: list[tuple[str, bytes]], producer: Any = None
) -> float:
    """Produce `items` (key, value) to `topic` and wait for every acknowledgement: seconds.
    `producer`: one of `engine_input_producer` (default: an unsigned one, for raw topics)."""
    if producer is None:  # (not `or`: a producer with nothing queued has len 0, is falsy)
        producer = make_producer(bootstrap, **{"linger.ms": 20})
    start = time.monotonic()
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value, key.encode())
                break
            except BufferError:
                producer.poll(0.01)
    flush(producer, topic, timeout_s=120)
    return time.monotonic() - start


def send_at_rate(
    producer: Producer, topic: str, items: list[tuple[str, str, bytes]], rate_per_s: float
) -> dict[str, int]:
    """Sends (id, key, value) items at `rate_per_s`, waking every `SEND_TICK_S` to send
    what is due; returns each id's send time (epoch ms), once the broker has them all."""
    sent_ms: dict[str, int] = {}
    start = time.monotonic()
    sent = 0
    while sent < len(items):
        due = min(len(items), int((time.monotonic() - start) * rate_per_s) + 1)
        now_ms = int(time.time() * 1000)
        for item_id, key, value in items[sent:due]:
            sent_ms[item_id] = now_ms
            producer.produce(topic, value, key.encode())
        sent = due
        time.sleep(SEND_TICK_S)  # pacing the sender, not waiting for a condition
        producer.poll(0)
    flush(producer, topic, timeout_s=60)
    return sent_ms


def from_start(bootstrap: str, name: str, partitions: int = 8) -> Consumer:
    """A consumer of every partition of topic `name` from its first record (no group
    commits). It fetches as the engine's hops do (`paced_fetching`, 20 ms): with librdkafka's
    default wait (500 ms) tansu holds a fetch that finds nothing for all of it, and
    unpaced it would take broker CPU from the engine being measured."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{name}",
            "enable.auto.commit": False,
            **paced_fetching(FETCH_WAIT_MAX_MS),
        }
    )
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def count_records(settings: Settings, topic: str, wanted: int, timeout_s: float) -> None:
    """Returns once `topic` holds `wanted` records. Counts without decoding (decoding took
    CPU from the engine being measured)."""
    spec = catalogue.spec(topic)
    consumer = from_start(settings.kafka, spec.full_name(settings.topic_prefix), spec.partitions)
    counted = 0
    deadline = time.monotonic() + timeout_s
    try:
        while counted < wanted:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{counted} of {wanted} {topic} records")
            counted += sum(1 for m in consumer.consume(5000, 0.05) if not m.error())
    finally:
        consumer.close()


def isolated_settings(settings: Settings, tag: str, **changes) -> Settings:
    run = uuid.uuid4().hex[:6]
    isolated = settings.with_overrides(
        topic_prefix=f"{tag}{run}.",
        app_id=f"{tag}-{run}",
        data_dir=Path(tempfile.mkdtemp()),
        assets_file=ASSETS_FILE,
        **changes,
    )
    create_topics(isolated.kafka, isolated.topic_prefix)
    return isolated


def new_database(server_url: str) -> str:
    import psycopg

    from sinks.migrate import database_url_named, migrate

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = database_url_named(server_url, name)
    migrate(url)
    return url


def percentiles(values: list[int]) -> tuple[float, int]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def with_children(pids: list[int]) -> list[int]:
    """The processes and everything they started (a worker and its intake process)."""
    return [*pids, *(child for pid in pids for child in descendants(pid))]


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def broker_pids() -> list[int]:
    """The embedded broker's processes: tansu, and s3rver when it keeps tansu's log (none
    when TOKENGINE_KAFKA points elsewhere)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name = (entry / "comm").read_text().strip()
                if name == "tansu" or (
                    name == "node" and b"s3rver" in (entry / "cmdline").read_bytes()
                ):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
