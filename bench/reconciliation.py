"""`python -m bench reconciliation`: tier-1 checks per second and their latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.common import (
    codec,
    engine_input_producer,
    from_start,
    isolated_settings,
    produce_all,
    report,
    send_at_rate,
)
from core.config import Settings
from tests.conftest import ASSETS_FILE, Worker
from tests.helpers import TopicReader
from tokengine.processes import free_port
from topics import catalogue

RECONCILIATION_ACCOUNTS = 10_000


def reconciliation_assets(directory: Path) -> Path:
    """The test assets plus one bank-backed token per operator bank account."""
    lines = [ASSETS_FILE.read_text()]
    for i in range(RECONCILIATION_ACCOUNTS):
        lines.append(
            f'[assets.F{i:05d}]\nunit = "USD"\nchain = "bank"\nbank_account = "BENCH{i:05d}"\n'
            'currency = "USD"\ndecimals = 2\nrounding_tolerance = "0.01"\n'
        )
    path = directory / "assets.toml"
    path.write_text("\n".join(lines))
    return path


def notification(n: int, tag: str) -> tuple[str, bytes]:
    from datetime import UTC, datetime
    from decimal import Decimal

    account = f"BENCH{n % RECONCILIATION_ACCOUNTS:05d}"
    value = {
        "message_id": f"{tag}-{n}",
        "account_id": account,
        "currency": "USD",
        "entries": [
            {
                "entry_reference": f"{tag}-{n}",
                "end_to_end_id": None,
                "credit_debit_indicator": "CRDT",
                "amount": Decimal("0.00"),  # the bank agrees with the (empty) ledger: OK level
                "currency": "USD",
                "booking_date": None,
                "value_date": None,
                "remittance_info": None,
                "deposit_account_id": None,
            }
        ],
        "created_at": datetime.now(UTC),
        "source_format": "bench",
        "validation_findings": [],
    }
    return account, codec.encode(catalogue.BANK_NOTIFICATIONS, value)


def result_latencies(settings: Settings, sent_ms: dict[str, int], order: list[str]) -> list[int]:
    """ms from each send to its reconciliation result's broker timestamp, in sending order."""
    consumer = from_start(settings.kafka, settings.topic_prefix + catalogue.RECONCILIATION_RESULTS)
    by_message: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(by_message) < len(sent_ms) and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error():
                continue
            result = codec.decode(catalogue.RECONCILIATION_RESULTS, message.value())
            sent = sent_ms.get(result["check_id"])
            if sent is not None:
                by_message[result["check_id"].rsplit(":", 1)[1]] = message.timestamp()[1] - sent
    consumer.close()
    return [by_message[message_id] for message_id in order if message_id in by_message]


def reconciliation(settings: Settings) -> None:
    """Tier-1 latency (camt.054 on the topic -> its result) and checks/s over 10,000 accounts.

    Latency at 100 notifications/s: the first 500 after the worker starts ("cold": Faust's
    first fetches, table and view warm-up) and the 1,500 after them ("steady").
    """
    isolated = isolated_settings(settings, "rec")
    isolated = isolated.with_overrides(assets_file=reconciliation_assets(isolated.data_dir))
    worker = Worker(isolated, free_port(), 0).start()
    topic = isolated.topic_prefix + catalogue.BANK_NOTIFICATIONS
    try:
        results = TopicReader(isolated, catalogue.RECONCILIATION_RESULTS)
        producer = engine_input_producer(isolated, catalogue.BANK_NOTIFICATIONS, **{"linger.ms": 0})
        rate, warm_up, count = 100.0, 500, 2000
        notifications = [notification(n, "lat") for n in range(count)]
        sent_ms = send_at_rate(
            producer,
            topic,
            [(f"tier1:{key}:lat-{n}", key, value) for n, (key, value) in enumerate(notifications)],
            rate,
        )
        in_order = result_latencies(isolated, sent_ms, [f"lat-{n}" for n in range(count)])
        for label, latencies in (("cold", in_order[:warm_up]), ("steady", in_order[warm_up:])):
            latencies = sorted(latencies)
            report(
                f"reconciliation_tier1_latency_ms_{label}",
                rate_per_s=round(rate),
                notifications=len(latencies),
                p50=round(statistics.median(latencies), 1),
                p99=round(latencies[int(len(latencies) * 0.99) - 1], 1),
            )
        backlog = [notification(n, "tp") for n in range(20_000)]
        start = time.monotonic()
        produce_all(
            isolated.kafka,
            topic,
            backlog,
            engine_input_producer(isolated, catalogue.BANK_NOTIFICATIONS, **{"linger.ms": 20}),
        )
        results.until(lambda rs: len(rs) >= count + len(backlog), 600, "backlog results")
        seconds = time.monotonic() - start
        results.close()
        report(
            "reconciliation_throughput",
            accounts=RECONCILIATION_ACCOUNTS,
            checks_per_s=round(len(backlog) / seconds),
        )
    finally:
        worker.stop()
