"""The invariants watch: the whole ledger checked continuously, from ledger-entries.

Every `CHECK_INTERVAL_S` it checks the nets of every ledger account (`streams.ledger_view`,
the whole ledger on every worker), per asset:
- every posting balanced: the nets of all ledger accounts sum to zero;
- no user account below zero;
- liabilities to users + fee account (+ clearing and liquidity in flight) == operator assets;
- the fee account above the asset's configured `fee_floor`.
A violation emits an `invariant.violated` alert and trips the breaker (OPEN), once per
finding. Per-record invariants (`reserved <= balance`, reservations == open payouts) are
checked by `streams.ledger_core` on every transition and stop the worker instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from streams.app import app, assets, codec, settings
from streams.ledger_core import ledger_asset
from streams.ledger_view import ledger_nets, ledger_topic_view
from topics import catalogue
from topics.breaker import breaker_record, publish_breaker_state
from topics.kafka import make_producer

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 5.0


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


reported: set[str] = set()  # each finding is raised once per worker


@app.timer(CHECK_INTERVAL_S)
async def check_invariants() -> None:
    with ledger_topic_view.lock:
        nets = dict(ledger_nets.nets)
    floors = {
        code: asset.fee_floor
        for code, asset in assets().assets.items()
        if asset.fee_floor is not None
    }
    found = [v for v in violations(nets, floors) if v not in reported]
    if found:
        reported.update(found)
        await asyncio.get_running_loop().run_in_executor(None, report, found)


def report(found: list[str]) -> None:
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
    record = breaker_record("global", "OPEN", "CRITICAL", f"invariants: {found[0]}", "invariants")
    publish_breaker_state(producer, settings.topic_prefix, codec, record)
