"""Prometheus counters that every kind of engine process keeps (workers and their intake,
the sink, the connectors): what it dead-lettered, and which records it refused because
the engine did not write them. `streams.metrics` re-exports them beside the workers' own;
the sink and the connectors serve them on `TOKENGINE_METRICS_PORT`."""

from __future__ import annotations

from prometheus_client import Counter

dead_letters = Counter(
    "token_engine_dead_letters", "Messages sent to the dead-letter topic.", ["component", "reason"]
)
unauthenticated_records = Counter(
    "token_engine_unauthenticated_records",
    "Records refused because the engine did not write them (forged or altered).",
    ["topic", "reader"],
)
