"""Runs one Faust worker: imports every agent, service and view, then starts the app."""

from __future__ import annotations

import logging

import faust

from streams import api, intake, ledger, request_view  # noqa: F401  (registers them on app)
from streams.app import app

LOG_LEVEL = "warn"


def run_worker(loglevel: str = LOG_LEVEL) -> None:
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel=loglevel, loop=_uvloop())
    worker.execute_from_commandline()


def _uvloop():
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.new_event_loop()
