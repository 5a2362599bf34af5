"""What the operator surface reads of reconciliation: every worker's whole-topic view.

Folds reconciliation-results (bounded), discrepancies, eod-snapshots, breaker-state
(partition 0: every change is on each) and sweep-results, so every worker answers
summaries, health, the wallets and the results of checks the same.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from streams.app import Engine
from streams.reconciliation.core import TREND_POINTS, drift_per_check
from streams.reconciliation.wallet_report import fold_sweep
from topics import catalogue
from topics.view import TopicView

MAX_RESULTS_KEPT = 100_000


class ReconciliationState:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}  # check id -> result (bounded below)
        self.latest: dict[str, dict[str, Any]] = {}  # bank account -> newest result
        self.discrepancies: dict[str, dict[str, Any]] = {}  # id -> newest version
        self.snapshots: dict[str, dict[str, Any]] = {}  # snapshot id -> newest
        self.breakers: dict[str, dict[str, Any]] = {}  # scope -> newest state
        self.trends: dict[str, list[Decimal]] = {}  # bank account -> tier-2 deviations %
        self.sweeps: dict[str, dict[str, Any]] = {}  # sweep id -> newest result
        self.alarm_version = 0  # counts discrepancy and breaker changes (gauges follow it)

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.RECONCILIATION_RESULTS:
            self.results[value["check_id"]] = value
            if len(self.results) > MAX_RESULTS_KEPT:
                self.results.pop(next(iter(self.results)))
            self.latest[value["account_id"]] = value
            if value["tier"] == "TIER2_INTRADAY":
                trend = self.trends.setdefault(value["account_id"], [])
                trend.append(value["deviation_pct"])
                del trend[:-TREND_POINTS]
        elif topic == catalogue.DISCREPANCIES:
            self.discrepancies[value["discrepancy_id"]] = value
            self.alarm_version += 1
        elif topic == catalogue.EOD_SNAPSHOTS:
            self.snapshots[value["snapshot_id"]] = value
        elif topic == catalogue.BREAKER_STATE:
            self.breakers[value["scope"]] = value
            self.alarm_version += 1
        elif topic == catalogue.SWEEP_RESULTS:
            fold_sweep(self.sweeps, value)

    def drift(self, account_id: str) -> Decimal:
        return drift_per_check(self.trends.get(account_id, []))

    def breaker_state(self, scope: str) -> dict[str, Any] | None:
        return self.breakers.get(scope)


class ReconciliationView:
    """`ReconciliationState` folded from its topics for the worker's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self.state = ReconciliationState()
        self.view: TopicView = engine.serve_view(
            [
                catalogue.RECONCILIATION_RESULTS,
                catalogue.DISCREPANCIES,
                catalogue.EOD_SNAPSHOTS,
                catalogue.BREAKER_STATE,
                catalogue.SWEEP_RESULTS,
            ],
            self.state.fold,
            "reconciliation-view",
            partitions={catalogue.BREAKER_STATE: 1},  # every change is on each partition
        )

    @property
    def lock(self):
        return self.view.lock
