"""Runs one Faust worker: imports every agent, service and view, then starts the app."""

from __future__ import annotations

import faust

from streams import api, intake, invariants, ledger, request_view  # noqa: F401  (registers them)
from streams.app import app, settings


def run_worker() -> None:
    worker = faust.Worker(app, loglevel=settings.log_level, loop=_uvloop())
    worker.execute_from_commandline()


def _uvloop():
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.new_event_loop()
