"""Runs one Faust worker: imports every agent, service and view, then starts the app."""

from __future__ import annotations

import gc

import faust

from streams import (  # noqa: F401  (importing registers agents, services, views, pages)
    api,
    audit_api,
    bank_intake,
    intake,
    invariants,
    lag,
    ledger,
    reconciliation,
    reconciliation_api,
    request_view,
)
from streams.app import app, settings


def run_worker() -> None:
    worker = faust.Worker(app, loglevel=settings.log_level, loop=_uvloop())
    # Faust's terminal spinner sets the root logger to DEBUG (to spin on every record):
    # then every debug call of aiokafka and Faust builds a record per message. No spinner.
    worker.spinner = None
    _quieter_collector()
    worker.execute_from_commandline()


def _quieter_collector() -> None:
    """Python's cycle collector stops every thread while it runs. With its defaults a
    worker at 1,400 events/s ran 2 full collections in 10 s, of 64-157 ms each (the
    modules, Faust and the app made at start, about 100,000 objects, were scanned every
    time), and a young one every 700 allocations. Objects made so far are frozen out of
    all collections, and young collections run every 10,000 allocations."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _uvloop():
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.new_event_loop()
