"""One Faust worker, composed: every component built from one `Engine`, then run.

The composition root of a worker: the whole-ledger view, the ledger agent, the request
view, reconciliation and its view, the ledger watch, the lag gauge, the intake process
(started and stopped with the worker), the bank intake and the HTTP API behind its access
control (`api.access`: every route, keys from the api-keys view). Nothing is
wired when a module is imported; `build_worker` is the one place that does it.
"""

from __future__ import annotations

import faust

from api import audit, deposit_addresses, health, requests, wallets
from api.access import Access
from api.bank import BankIntake
from api.operations import Operations
from api.reconciliation import ReconciliationApi
from core.config import Settings
from core.secrets import install_log_redaction, settings_secrets
from streams.app import Engine
from streams.gc_tuning import quieter_collector
from streams.intake_process import Intake
from streams.lag import LagGauge
from streams.ledger.agent import LedgerAgent
from streams.ledger_view import LedgerView
from streams.ledger_watch import LedgerWatch
from streams.reconciliation.agent import Reconciliation
from streams.reconciliation.state import ReconciliationView
from streams.request_view import RequestView


def build_worker(settings: Settings) -> Engine:
    engine = Engine(settings)
    keys = Access(engine)  # before any route: every request passes its middleware
    ledger_view = LedgerView(engine)
    ledger = LedgerAgent(engine, ledger_view)
    request_view = RequestView(engine)
    reconciliation_view = ReconciliationView(engine)
    Reconciliation(engine, ledger_view, reconciliation_view)
    LedgerWatch(engine, ledger_view)
    LagGauge(engine, ledger.feed)
    intake = Intake(engine)
    bank = BankIntake(engine)
    requests.install(engine, ledger, request_view)
    health.install(engine, intake)
    ReconciliationApi(engine, bank, reconciliation_view)
    audit.install(engine)
    wallets.install(engine, reconciliation_view)
    deposit_addresses.install(engine, Operations(engine, keys))
    return engine


def run_worker(settings: Settings) -> None:
    # every record redacted (a URL's password, the Postgres password file's), libraries quiet
    install_log_redaction(settings_secrets(settings), settings.log_level)
    engine = build_worker(settings)
    worker = faust.Worker(engine.app, loglevel=settings.log_level, loop=_uvloop())
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
