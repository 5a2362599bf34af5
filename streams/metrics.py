"""Prometheus metrics of a worker: one registry, names prefixed `token_engine_`.

Agents and services count here; `GET /metrics` serves `render()`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

events_processed = Counter(
    "token_engine_events_processed", "Events processed, per agent.", ["agent"]
)
dead_letters = Counter(
    "token_engine_dead_letters", "Messages sent to the dead-letter topic.", ["component", "reason"]
)

stale_writes_ignored = Counter(
    "token_engine_stale_writes_ignored",
    "Changelog records older than the table's, ignored in recovery (a stale worker's writes).",
)
ledger_rewinds = Counter(
    "token_engine_ledger_rewinds",
    "Times the ledger sent its consumer back to a partition's first unapplied command.",
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
