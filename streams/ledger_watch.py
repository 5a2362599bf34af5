"""The ledger watch: the whole ledger's invariants checked continuously, from ledger-entries.

Every `CHECK_INTERVAL_S` it checks the nets of every ledger account (`streams.ledger_view`,
the whole ledger on every worker), per asset:
- every posting balanced: the nets of all ledger accounts sum to zero;
- no user account below zero;
- liabilities to users + fee account + suspense + capital (+ clearing and liquidity in
  flight) == operator assets;
- the fee account above the asset's configured `fee_floor`.
A violation emits an `invariant.violated` alert and trips the breaker (OPEN), once per
finding. Each check also sets the operator accounts' balance gauges (and the fee floors)
that the dashboards and the alert rules read. Per-record invariants (`reserved <=
balance`, reservations == open payouts) are checked by `streams.ledger.invariants` on
every transition and stop the worker instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from core.accounts import ledger_asset, operator_assets, operator_capital, operator_suspense
from core.breaker import GLOBAL_SCOPE, State
from streams import metrics
from streams.app import Engine
from streams.ledger_view import LedgerView
from topics import catalogue
from topics.alerts import alert
from topics.authentication import SigningProducer
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
        owed = (
            users[asset]
            - nets.get(f"operator:{asset}:fees", Decimal(0))
            - nets.get(operator_suspense(asset), Decimal(0))  # owed to whom it is assigned
            - nets.get(operator_capital(asset), Decimal(0))  # the operator's own funding
        )
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


def show_operator_balances(nets: dict[str, Decimal]) -> None:
    """Set the balance gauge of every operator ledger account: its assets account is
    debit-normal (debits - credits), the others credit-normal (credits - debits)."""
    for account, net in nets.items():
        if not account.startswith("operator:"):
            continue
        asset = ledger_asset(account)
        balance = net if account == operator_assets(asset) else -net
        metrics.operator_balance.labels(ledger_account=account, asset=asset).set(balance)


class LedgerWatch:
    """Checks the whole ledger every CHECK_INTERVAL_S; each finding raised once per worker."""

    def __init__(self, engine: Engine, ledger: LedgerView) -> None:
        self.engine = engine
        self.ledger = ledger
        self.reported: set[str] = set()
        self.floors = {
            code: asset.fee_floor
            for code, asset in engine.assets.assets.items()
            if asset.fee_floor is not None
        }
        for code, floor in self.floors.items():
            metrics.fee_floor.labels(asset=code).set(floor)
        engine.app.timer(CHECK_INTERVAL_S, name="ledger_watch")(self.check)

    async def check(self) -> None:
        with self.ledger.lock:
            nets = dict(self.ledger.nets.nets)
        show_operator_balances(nets)
        found = [v for v in violations(nets, self.floors) if v not in self.reported]
        if found:
            self.reported.update(found)
            await asyncio.get_running_loop().run_in_executor(None, self.report, found)

    def report(self, found: list[str]) -> None:
        log.critical("invariants violated: %s", found)
        settings, codec = self.engine.settings, self.engine.codec
        producer = SigningProducer(
            make_producer(self.engine.bootstrap), settings.topic_prefix, self.engine.auth
        )
        now = datetime.now(UTC)
        for finding in found:
            raised = alert(
                "invariant.violated", "CRITICAL", finding, raised_by=finding, raised_at=now
            )
            producer.produce(
                settings.topic_prefix + catalogue.ALERTS,
                codec.encode(catalogue.ALERTS, raised),
                b"invariant.violated",
            )
        reason = f"invariants: {found[0]}"
        record = breaker_record(GLOBAL_SCOPE, State.OPEN, "CRITICAL", reason, "invariants")
        publish_breaker_state(producer, settings.topic_prefix, codec, record)
