"""Prometheus metrics of a worker: one registry, names prefixed `token_engine_`.

Agents and services count here; `GET /metrics` serves `render()`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest

# kept by every kind of process (the sink and the connectors too): defined in topics/
from topics.metrics import dead_letters, unauthenticated_records  # noqa: F401

events_processed = Counter(
    "token_engine_events_processed", "Events processed, per agent.", ["agent"]
)

stale_writes_ignored = Counter(
    "token_engine_stale_writes_ignored",
    "Changelog records older than the table's, ignored in recovery (a stale worker's writes).",
)
ledger_holes_skipped = Counter(
    "token_engine_ledger_holes_skipped",
    "Holes in ledger-commands passed as settled (offsets the broker will never deliver).",
)
ledger_rewinds = Counter(
    "token_engine_ledger_rewinds",
    "Times the ledger sent its consumer back to a partition's first unapplied command.",
)
reconciliation_checks = Counter(
    "token_engine_reconciliation_checks",
    "Reconciliation checks, per tier and threshold level.",
    ["tier", "status"],
)
reconciliation_discrepancies = Gauge(
    "token_engine_reconciliation_discrepancies",
    "Open reconciliation discrepancies, per severity.",
    ["severity"],
)
circuit_breaker_active = Gauge(
    "token_engine_circuit_breaker_active",
    "1 while the breaker halts payouts for the bank account's asset (or globally).",
    ["account_id"],
)
operator_balance = Gauge(
    "token_engine_operator_balance",
    "Balance of each operator ledger account (assets: what the operator holds; fees, "
    "liquidity: what it owes itself), from the whole-ledger view; a display figure (the "
    "ledger's amounts are exact decimals, Prometheus keeps float64).",
    ["ledger_account", "asset"],
)
fee_floor = Gauge(
    "token_engine_fee_floor",
    "The configured floor of each asset's fee account (`fee_floor` in the asset file).",
    ["asset"],
)
consumer_lag = Gauge(
    "token_engine_consumer_lag",
    "Messages not yet processed, per agent (summed over its assigned partitions).",
    ["agent"],
)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def counter_total(counter: Counter) -> float:
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
