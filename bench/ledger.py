"""`python -m bench ledger`: the raw broker, Faust's null and naive agents, the engine's code
alone, the engine with 1 and 2 workers (rate, ratios, cores) and its latency at half rate."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import (
    ACCOUNTS,
    EVENTS,
    SENDER_LINGER_MS,
    broker_pids,
    codec,
    count_records,
    cpu_seconds,
    deposits,
    engine_input_producer,
    from_start,
    isolated_settings,
    percentiles,
    produce_all,
    report,
    send_at_rate,
    with_children,
)
from core.config import Settings
from tests.conftest import ASSETS_FILE, Worker
from tokengine.processes import free_port
from topics import catalogue


def raw_broker(bootstrap: str) -> None:
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
    admin.create_topics([NewTopic(topic, 8, 1)])[topic].result()
    items = [(f"k{i % ACCOUNTS}", b"x" * 100) for i in range(100_000)]
    seconds = produce_all(bootstrap, topic, items)
    consumer = from_start(bootstrap, topic)
    seen, start = 0, time.monotonic()
    while seen < len(items):
        seen += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
    consume_s = time.monotonic() - start
    consumer.close()
    report(
        "raw_broker",
        produce_msg_per_s=round(len(items) / seconds),
        consume_msg_per_s=round(len(items) / consume_s),
    )


def baseline(settings: Settings, kind: str) -> float:
    topic = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    for future in admin.create_topics(
        [NewTopic(topic, 8, 1), NewTopic(topic + "-out", 8, 1)]
    ).values():
        future.result()
    produce_all(settings.kafka, topic, deposits(EVENTS, kind))
    result = Path(tempfile.mkdtemp()) / "result"
    env = {
        **os.environ,
        **settings.as_environ(),
        "BENCH_EVENTS": str(EVENTS),
        "BENCH_RESULT": str(result),
        "BENCH_TOPIC": topic,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_agents", kind],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not result.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the {kind} agent exited ({process.returncode})")
            time.sleep(0.2)
        seconds = float(result.read_text().split()[1])
    finally:
        process.terminate()
        process.wait(30)
    return EVENTS / seconds


def code_alone() -> float:
    """Events/s of the engine's own per-event code, no broker and no framework: intake's
    `route` of a deposit observation, then what the ledger batch does with the command
    (decode envelope and payload, `apply`, encode the outputs and the record). The ceiling
    any framework around this code can reach on one core."""
    from datetime import UTC, datetime

    from core.assets import load_assets
    from streams.intake import Source, route
    from streams.ledger.apply import apply
    from streams.ledger.commands import decode_command
    from streams.ledger.records import AccountRecord, encode_record
    from streams.ledger.step import Context
    from topics.authentication import RecordAuth, RecordKeys

    assets = load_assets(ASSETS_FILE)
    auth = RecordAuth(RecordKeys.generate(), catalogue.WORKER)  # signs, as the bank connector
    context = Context(assets, {})
    records: dict[str, AccountRecord] = {}
    items = deposits(EVENTS, "c")
    now = datetime.now(UTC)
    start = time.monotonic()
    for offset, (key, value) in enumerate(items):
        headers = auth.headers(catalogue.CHAIN_OBSERVATIONS, key.encode(), value)
        source = Source(catalogue.CHAIN_OBSERVATIONS, 0, offset, key.encode(), value, headers)
        [command_output] = route(source, codec, assets, now, auth)
        command = decode_command(codec, command_output.value, offset, int(time.time() * 1000))
        stored = records.get(command.account_id)
        record = stored.clone() if stored else AccountRecord(command.account_id)
        for output in apply(record, command, context):
            codec.encode(output.topic, output.value)
        encode_record(record)
        records[record.account_id] = record
    return EVENTS / (time.monotonic() - start)


def engine(settings: Settings, workers: int) -> tuple[float, dict[str, float]]:
    """Events/s from the first input to the last balance update, backlog already waiting,
    and the cores the workers and the broker used meanwhile."""
    isolated = isolated_settings(settings, "bench")
    started = [Worker(isolated, free_port(), i).start() for i in range(workers)]
    try:
        for worker in started:  # a worker joining made the others rebalance: wait for them
            worker.wait_ready()
        items = deposits(EVENTS, f"e{workers}")
        worker_pids = with_children([worker.process.process.pid for worker in started])
        before = {"workers": cpu_seconds(worker_pids), "broker": cpu_seconds(broker_pids())}
        start = time.monotonic()
        produce_all(
            isolated.kafka,
            isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS,
            items,
            engine_input_producer(isolated, catalogue.CHAIN_OBSERVATIONS, **{"linger.ms": 20}),
        )
        count_records(isolated, catalogue.BALANCE_UPDATES, EVENTS, 600)
        seconds = time.monotonic() - start
        after = {"workers": cpu_seconds(worker_pids), "broker": cpu_seconds(broker_pids())}
    finally:
        for worker in started:
            worker.stop()
    cores = {name: round((after[name] - before[name]) / seconds, 2) for name in before}
    return EVENTS / seconds, cores


def idle_cores(settings: Settings, seconds: float = 5.0) -> dict[str, float]:
    """Cores a started worker and the broker use while no event arrives (quiet consumers
    still fetch: tansu answers an empty fetch when its wait ends)."""
    isolated = isolated_settings(settings, "idle")
    worker = Worker(isolated, free_port(), 0).start()
    try:
        pids = {"worker": with_children([worker.process.process.pid]), "broker": broker_pids()}
        before = {name: cpu_seconds(p) for name, p in pids.items()}
        time.sleep(seconds)  # measuring a quiet interval, not waiting for a condition
        used = {name: cpu_seconds(p) - before[name] for name, p in pids.items()}
        return {name: round(cpu / seconds, 2) for name, cpu in used.items()}
    finally:
        worker.stop()


def broker_times_ms(
    settings: Settings, topic: str, id_field: str, wanted: int, ids: set[str]
) -> dict[str, int]:
    """Broker timestamp of each record of `topic` whose `id_field` is one of `ids`."""
    consumer = from_start(settings.kafka, settings.topic_prefix + topic)
    times: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while len(times) < wanted and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error():
                continue
            record_id = codec.decode(topic, message.value())[id_field]
            if record_id in ids:
                times.setdefault(record_id, message.timestamp()[1])
    consumer.close()
    return times


def latency(settings: Settings, rate_per_s: float) -> dict[str, tuple[float, int]]:
    """p50/p99 ms at a fixed rate: from an input's send to its balance update's record
    timestamp, and split at the ledger command (intake hop, then ledger hop). A record's
    timestamp is when its producer took it (CreateTime); the balance update is readable
    after the ledger's flush of the batch, one broker round trip later (5-25 ms here)."""
    isolated = isolated_settings(settings, "lat")
    worker = Worker(isolated, free_port(), 0).start()
    count = min(EVENTS, int(rate_per_s * 10))
    items = deposits(count, "lat")
    producer = engine_input_producer(
        isolated, catalogue.CHAIN_OBSERVATIONS, **{"linger.ms": SENDER_LINGER_MS}
    )
    topic = isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS
    try:
        # keyed by command id (= the balance update's cause)
        sent_ms = send_at_rate(
            producer,
            topic,
            [
                (f"deposit:ethereum:0xlat{n:08d}:0", key, value)
                for n, (key, value) in enumerate(items)
            ],
            rate_per_s,
        )
        ids = set(sent_ms)
        updated = broker_times_ms(isolated, catalogue.BALANCE_UPDATES, "cause_id", count, ids)
        commanded = broker_times_ms(isolated, catalogue.LEDGER_COMMANDS, "command_id", count, ids)
    finally:
        worker.stop()
    both = [i for i in updated if i in commanded]
    return {
        "end_to_end": percentiles([updated[i] - sent_ms[i] for i in updated]),
        "intake_hop": percentiles([commanded[i] - sent_ms[i] for i in both]),
        "ledger_hop": percentiles([updated[i] - commanded[i] for i in both]),
    }


def engine_report(settings: Settings, workers: int, null: float, **compare_to: float) -> float:
    """Runs the engine with `workers` and prints its rate, ratios and cores; returns the rate."""
    rate, cores = engine(settings, workers)
    report(
        "engine_1_worker" if workers == 1 else f"engine_{workers}_workers",
        events_per_s=round(rate),
        vs_null=f"{rate / null:.2f}",
        **{name: f"{rate / other:.2f}" for name, other in compare_to.items()},
        worker_cores=cores["workers"],
        broker_cores=cores["broker"],
        cpu_us_per_event=round((cores["workers"] + cores["broker"]) / rate * 1e6),
    )
    return rate


def ledger(settings: Settings) -> None:
    """The broker, Faust's null and naive agents, and the engine with 1 and 2 workers."""
    report("setup", events=EVENTS, accounts=ACCOUNTS, cores=os.cpu_count())
    raw_broker(settings.kafka)
    null = baseline(settings, "null")
    report("faust_null_agent", events_per_s=round(null), vs_null="1.00")
    naive = baseline(settings, "naive")
    report("faust_naive_ledger_agent", events_per_s=round(naive), vs_null=f"{naive / null:.2f}")
    alone = code_alone()
    report("engine_code_alone_1_core", events_per_s=round(alone), vs_null=f"{alone / null:.2f}")
    one = engine_report(settings, 1, null, vs_code_alone=alone)
    engine_report(settings, 2, null, vs_1_worker=one)
    quiet = idle_cores(settings)
    report("engine_idle", worker_cores=quiet["worker"], broker_cores=quiet["broker"])
    latencies = latency(settings, one / 2)
    figures = {}
    for part, (p50, p99) in latencies.items():
        figures[f"{part}_p50_ms"] = round(p50)
        figures[f"{part}_p99_ms"] = p99
    report(
        "engine_latency_half_max_rate",
        rate_per_s=round(one / 2),
        sender_linger_ms=SENDER_LINGER_MS,
        **figures,
    )
