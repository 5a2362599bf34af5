"""Exactly once under SIGKILL, rebalances and replay, checked against the inputs' model
(and the Postgres sink's tables against the same model after the kills).

>= 50,000 mixed events over 1,000 accounts (5% duplicates, 1% garbage) go through real
workers that are killed with SIGKILL at random points; the final balances must equal
what the inputs imply, exactly. The seed is printed so a failing run can be replayed.
"""

from __future__ import annotations

import os
import random
import threading
from decimal import Decimal

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.helpers import TopicReader, latest_by, produce_encoded
from tests.streams.workload import Workload, with_noise
from topics import catalogue
from topics.admin import create_topics
from topics.kafka import make_producer

PHASE_TIMEOUT_S = 400.0


def seed() -> int:
    value = int(os.environ.get("TOKENGINE_TEST_SEED", random.randrange(1 << 30)))
    print(f"workload seed: {value} (TOKENGINE_TEST_SEED={value} replays it)")
    return value


class Chaos:
    """Kills a worker with SIGKILL after a random delay and restarts it at once.

    Like `tokengine up`'s supervisor, it also restarts the worker if it exits by itself
    (the ledger exits on purpose when it must re-read a partition from its watermark).
    """

    def __init__(self, worker, rng: random.Random) -> None:
        self.worker, self.rng, self.kills, self.exits = worker, rng, 0, 0
        self.timers: list[threading.Timer] = []
        self.lock = threading.Lock()
        self.watching = threading.Event()
        self.watcher = threading.Thread(target=self._supervise, daemon=True)
        self.watcher.start()

    def _supervise(self) -> None:
        while not self.watching.wait(0.5):
            with self.lock:
                if self.worker.process and not self.worker.process.alive():
                    self.exits += 1
                    self.worker.start(wait=False)

    def kill_later(self, low_s: float, high_s: float) -> None:
        timer = threading.Timer(self.rng.uniform(low_s, high_s), self._kill_and_restart)
        self.timers.append(timer)
        timer.start()

    def _kill_and_restart(self) -> None:
        with self.lock:
            self.worker.kill()
            self.kills += 1
            self.worker.start(wait=False)

    def join(self) -> None:
        for timer in self.timers:
            timer.join()
        self.watching.set()
        self.watcher.join()
        print(f"chaos: {self.kills} kills, {self.exits} exits restarted")


def run_phases(settings, workload: Workload, rng: random.Random, during_phase) -> int:
    results = TopicReader(settings, catalogue.REQUEST_RESULTS)
    updates = TopicReader(settings, catalogue.BALANCE_UPDATES)
    accounts = {key for _, key, _ in workload.phase1}
    final = ("COMPLETED", "REJECTED", "FAILED")
    phases = [
        (
            workload.phase1,
            lambda: updates.until(
                lambda rs: {r["account_id"] for r in rs} >= accounts, PHASE_TIMEOUT_S, "phase 1"
            ),
        ),
        (
            workload.phase2,
            lambda: results.until(
                lambda rs: decided(
                    rs, workload.withdrawal_ids + workload.transfer_ids, ("ACCEPTED", *final)
                ),
                PHASE_TIMEOUT_S,
                "phase 2",
            ),
        ),
        (
            workload.phase3,
            lambda: results.until(
                lambda rs: decided(rs, workload.withdrawal_ids, final), PHASE_TIMEOUT_S, "phase 3"
            ),
        ),
    ]
    produced = 0
    for index, (messages, wait) in enumerate(phases):
        noisy = with_noise(messages, rng, duplicates=0.05, garbage=0.01)
        produced += len(noisy)
        produce_encoded(settings, noisy)
        during_phase(index)
        wait()
    expected = workload.expected_balances()
    updates.until(lambda rs: balances_of(rs) == expected, PHASE_TIMEOUT_S, "final balances")
    newest = latest_by(updates.records, "account_id", "asset")
    assert all(r["reserved"] == 0 for r in newest.values())
    statuses = latest_by(results.records, "request_id")
    assert (
        sum(
            1
            for (rid,), r in statuses.items()
            if r["status"] == "REJECTED" and r["reason"] == "insufficient_funds"
        )
        == workload.unaffordable
    )
    results.close()
    updates.close()
    return produced


def decided(records, request_ids, statuses) -> bool:
    newest = latest_by(records, "request_id")
    return all((rid,) in newest and newest[(rid,)]["status"] in statuses for rid in request_ids)


def balances_of(records) -> dict[str, Decimal]:
    return {
        account: r["balance"]
        for (account, _), r in latest_by(records, "account_id", "asset").items()
    }


def replay_into_fresh_app(settings, start_worker_for) -> dict[str, Decimal]:
    """Copy the ordered command log, as it is, into a fresh app's topics and run it."""
    fresh = settings.with_overrides(
        topic_prefix=f"replay-{settings.topic_prefix}", app_id=f"replay-{settings.app_id}"
    )
    create_topics(fresh.kafka, fresh.topic_prefix)
    spec = catalogue.spec(catalogue.LEDGER_COMMANDS)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka,
            "group.id": "replay-copy",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign(
        [
            TopicPartition(spec.full_name(settings.topic_prefix), p, OFFSET_BEGINNING)
            for p in range(spec.partitions)
        ]
    )
    producer = make_producer(fresh.kafka, **{"linger.ms": 20})
    at_end: set[int] = set()
    copied = 0
    while len(at_end) < spec.partitions:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            at_end.add(message.partition())
            continue
        producer.produce(
            spec.full_name(fresh.topic_prefix),
            message.value(),
            message.key(),
            partition=message.partition(),
            headers=message.headers(),  # the record's authentication (topic, key, value)
        )
        producer.poll(0)
        copied += 1
    consumer.close()
    assert producer.flush(120) == 0 and copied > 0
    start_worker_for(fresh)
    return fresh


def postgres_equals_the_ledger(settings, services, expected: dict[str, Decimal]) -> None:
    """The Postgres sink, run over what the crash test left, holds exactly the same ledger."""
    import psycopg

    from sinks.verify import verify_postgres
    from tests.sinks.test_postgres_sink import (
        SinkThread,
        new_database,
        postgres_balances,
        row_count,
        transactions_on_topic,
    )
    from tests.streams.test_ledger_worker import wait_for

    url = new_database(services.database_url)
    sink = SinkThread(settings.with_overrides(database_url=url))
    transactions = transactions_on_topic(settings)
    try:
        wait_for(lambda: row_count(url, "ledger_transactions") == transactions, 300, "rows")
        wait_for(lambda: postgres_balances(url) == expected, 120, "balances in Postgres")
    finally:
        sink.stop()
    with psycopg.connect(url) as conn:
        postings = conn.execute("SELECT count(*) FROM ledger_postings").fetchone()[0]
    assert postings >= 2 * transactions
    assert verify_postgres(url).ok


@pytest.mark.timeout(1500)
def test_sigkill_three_times_mid_stream_balances_equal_the_model(settings, services, start_worker):
    rng = random.Random(seed())
    workload = Workload(seed=rng.randrange(1 << 30))
    assert len({k for _, k, _ in workload.phase1}) >= 1000
    worker = start_worker()
    chaos = Chaos(worker, rng)
    produced = run_phases(settings, workload, rng, lambda phase: chaos.kill_later(0.5, 4.0))
    assert produced >= 50_000
    chaos.join()
    worker.stop()
    postgres_equals_the_ledger(settings, services, workload.expected_balances())
    # replaying the ordered inputs into a fresh app gives identical balances
    fresh = replay_into_fresh_app(settings, lambda s: start_worker(settings=s))
    updates = TopicReader(fresh, catalogue.BALANCE_UPDATES)
    expected = workload.expected_balances()
    updates.until(lambda rs: balances_of(rs) == expected, PHASE_TIMEOUT_S, "replayed balances")
    updates.close()
    assert chaos.kills == 3


@pytest.mark.timeout(1500)
def test_a_second_worker_joining_and_leaving_mid_stream(settings, start_worker):
    rng = random.Random(seed())
    workload = Workload(seed=rng.randrange(1 << 30))
    supervisor = Chaos(start_worker(), rng)  # restarts the worker if it exits (no kills here)
    helpers: list = []

    def during(phase: int) -> None:
        if phase == 1:
            helpers.append(start_worker(wait=False))
        if phase == 2:
            helpers[0].kill()

    assert run_phases(settings, workload, rng, during) >= 50_000
    supervisor.join()
