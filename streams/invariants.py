"""The invariants watch: the whole ledger checked continuously, from ledger-entries.

Reads every partition of ledger-entries (no consumer group: each worker sees all) and keeps
the net of every ledger account. Every `CHECK_INTERVAL_S` it checks, per asset:
- every posting balanced: the nets of all ledger accounts sum to zero;
- no user account below zero;
- liabilities to users + fee account (+ clearing and liquidity in flight) == operator assets;
- the fee account above the asset's configured `fee_floor`.
A violation emits an `invariant.violated` alert and trips the breaker (OPEN), once per
finding. Per-record invariants (`reserved <= balance`, reservations == open payouts) are
asserted by `streams.ledger_core` on every transition and stop the worker instead.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import mode
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.app import app, assets, codec, settings
from streams.ledger_core import ledger_asset
from topics import catalogue
from topics.breaker import breaker_record, publish_breaker_state
from topics.codec import DecodeError
from topics.holes import HoleGuard
from topics.kafka import make_producer

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 5.0
MAX_BATCH_MESSAGES = 5000


def violations(nets: dict[str, Decimal], fee_floors: dict[str, Decimal]) -> list[str]:
    """What is wrong with these ledger-account nets (debits - credits); pure."""
    found = []
    by_asset: dict[str, Decimal] = defaultdict(Decimal)
    users: dict[str, Decimal] = defaultdict(Decimal)
    for account, net in nets.items():
        asset = ledger_asset(account)
        by_asset[asset] += net
        if account.startswith("user:"):
            users[asset] -= net
            if net > 0:
                found.append(f"{account} is negative ({-net})")
    for asset, total in sorted(by_asset.items()):
        if total != 0:
            found.append(f"{asset}: postings do not balance (off by {total})")
        operator = nets.get(f"operator:{asset}:assets", Decimal(0))
        owed = users[asset] - nets.get(f"operator:{asset}:fees", Decimal(0))
        in_flight = -nets.get(f"clearing:{asset}", Decimal(0)) - nets.get(
            f"operator:{asset}:liquidity", Decimal(0)
        )
        if operator != owed + in_flight:
            found.append(
                f"{asset}: operator assets {operator} != liabilities + fees {owed + in_flight}"
            )
        fees = -nets.get(f"operator:{asset}:fees", Decimal(0))
        floor = fee_floors.get(asset)
        if floor is not None and fees < floor:
            found.append(f"{asset}: fee account {fees} is below its floor {floor}")
    return found


@app.service
class InvariantsWatch(mode.Service):
    """Keeps the nets and runs `violations` in a thread for the worker's lifetime."""

    stopping: threading.Event
    thread: threading.Thread

    async def on_start(self) -> None:
        self.stopping = threading.Event()
        self.reported: set[str] = set()
        self.thread = threading.Thread(target=self.run, name="invariants", daemon=True)
        self.thread.start()

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.loop.run_in_executor(None, self.thread.join, 10)

    def run(self) -> None:
        spec = catalogue.spec(catalogue.LEDGER_ENTRIES)
        name = spec.full_name(settings.topic_prefix)
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka,
                "group.id": "invariants",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
        holes = HoleGuard(consumer)
        holes.start_at([TopicPartition(name, p, 0) for p in range(spec.partitions)])
        nets: dict[str, Decimal] = defaultdict(Decimal)
        seen: set[str] = set()  # transaction ids: a re-emitted transaction counts once
        try:
            while not self.stopping.wait(CHECK_INTERVAL_S):
                while True:
                    messages = consumer.consume(MAX_BATCH_MESSAGES, 0.1)
                    for message in holes.contiguous(messages):
                        try:
                            entry = codec.decode(catalogue.LEDGER_ENTRIES, message.value())
                        except DecodeError:
                            continue
                        if entry["transaction_id"] in seen:
                            continue
                        seen.add(entry["transaction_id"])
                        for posting in entry["postings"]:
                            sign = 1 if posting["direction"] == "DEBIT" else -1
                            nets[posting["ledger_account"]] += sign * posting["amount"]
                    if not messages:
                        break
                floors = {
                    code: asset.fee_floor
                    for code, asset in assets().assets.items()
                    if asset.fee_floor is not None
                }
                self.report([v for v in violations(nets, floors) if v not in self.reported])
        finally:
            consumer.close()

    def report(self, found: list[str]) -> None:
        if not found:
            return
        self.reported.update(found)
        log.critical("invariants violated: %s", found)
        producer = make_producer(settings.kafka)
        now = datetime.now(UTC)
        for finding in found:
            alert = {
                "alert_id": f"invariant.violated:{finding}",
                "kind": "invariant.violated",
                "severity": "CRITICAL",
                "account_id": None,
                "message": finding,
                "details": {},
                "raised_at": now,
            }
            producer.produce(
                settings.topic_prefix + catalogue.ALERTS,
                codec.encode(catalogue.ALERTS, alert),
                b"invariant.violated",
            )
        record = breaker_record(
            "global", "OPEN", "CRITICAL", f"invariants: {found[0]}", "invariants"
        )
        publish_breaker_state(producer, settings.topic_prefix, codec, record)
