"""Runs one Faust worker: imports every agent, service and view, then starts the app.

The worker starts its intake process (`streams.intake_process`) and stops it with itself."""

from __future__ import annotations

import faust

from streams import (  # noqa: F401  (importing registers agents, services, views, pages)
    api,
    audit_api,
    bank_intake,
    intake_process,
    invariants,
    lag,
    ledger,
    reconciliation,
    reconciliation_api,
    request_view,
)
from streams.app import app, settings
from streams.gc_tuning import quieter_collector


def run_worker() -> None:
    worker = faust.Worker(app, loglevel=settings.log_level, loop=_uvloop())
    # Faust's terminal spinner sets the root logger to DEBUG (to spin on every record):
    # then every debug call of aiokafka and Faust builds a record per message. No spinner.
    worker.spinner = None
    quieter_collector()
    worker.execute_from_commandline()


def _uvloop():
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.new_event_loop()
