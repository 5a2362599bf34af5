"""`python -m bench sink`: the Postgres sink's rows per second and event-to-row lag."""

from __future__ import annotations

import statistics
import threading
import time

from bench.common import (
    EVENTS,
    deposits,
    engine_input_producer,
    isolated_settings,
    new_database,
    produce_all,
    report,
)
from core.config import Settings
from tests.conftest import Worker
from tests.helpers import TopicReader
from tokengine.processes import free_port
from topics import catalogue


def sink(settings: Settings) -> None:
    """Rows/s into Postgres (a backlog, from offset 0) and the event-to-row lag (live)."""
    import psycopg

    from sinks.postgres import PostgresSink

    isolated = isolated_settings(settings, "sink", database_url=new_database(settings.database_url))
    worker = Worker(isolated, free_port(), 0).start()
    live = PostgresSink(isolated)
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    try:
        items = deposits(EVENTS, "s")
        reader = TopicReader(isolated, catalogue.BALANCE_UPDATES)
        produce_all(
            isolated.kafka,
            isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS,
            items,
            engine_input_producer(isolated, catalogue.CHAIN_OBSERVATIONS, **{"linger.ms": 20}),
        )
        reader.until(lambda rs: len(rs) >= EVENTS, 600, "balance updates")
        reader.close()
        with psycopg.connect(isolated.database_url) as conn:
            while conn.execute("SELECT count(*) FROM ledger_transactions").fetchone()[0] < EVENTS:
                time.sleep(0.2)
    finally:
        live.stop()
        thread.join(30)
        worker.stop()
    lags = sorted(live.lags_ms)
    report(
        "sink_live_lag_ms",
        p50=round(statistics.median(lags)),
        p99=round(lags[int(len(lags) * 0.99) - 1]),
        rows=live.rows_written,
    )
    backlog = isolated.with_overrides(
        database_url=new_database(settings.database_url), app_id=f"{isolated.app_id}-backlog"
    )
    replay = PostgresSink(backlog)
    thread = threading.Thread(target=replay.run, daemon=True)
    start = time.monotonic()
    thread.start()
    with psycopg.connect(backlog.database_url) as conn:
        while conn.execute("SELECT count(*) FROM ledger_transactions").fetchone()[0] < EVENTS:
            time.sleep(0.05)
    seconds = time.monotonic() - start
    replay.stop()
    thread.join(30)
    report(
        "sink_backlog",
        rows_per_s=round(replay.rows_written / seconds),
        events_per_s=round(EVENTS * 3 / seconds),  # a deposit: entry, balance, observation
    )
