"""Bank inputs inside a worker: the bank connector's lifetime, its drop directory, the
intraday balance poll, and `POST /api/v1/bank/camt`.

The connector (`connectors.bank`) turns what arrives into bank events; this module only
decides when it runs: on an HTTP request, every `INBOX_SWEEP_S` for the drop directory,
and every `TOKENGINE_INTRADAY_INTERVAL_S` (leader only) for the intraday balances.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode
from faust import web

from connectors.bank import BankConnector, Submission
from connectors.bank_inbox import sweep
from connectors.camt import CamtError
from connectors.intraday import IntradayError, fetch_balance
from streams.app import app, assets, codec, settings
from tokengine.bank_events import check_bank_event
from tokengine.fields import FieldError, load_json
from topics import catalogue
from topics.kafka import make_producer

log = logging.getLogger(__name__)

INBOX_SWEEP_S = 1.0

connector = BankConnector(
    settings.kafka or "",
    settings.topic_prefix,
    codec,
    make_producer(settings.kafka or "127.0.0.1:9092"),
    assets(),
)


@app.service
class BankConnectorService(mode.Service):
    async def on_start(self) -> None:
        connector.start()

    async def on_stop(self) -> None:
        await self.loop.run_in_executor(None, connector.stop)


async def in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def submit_body(request: web.Request, source: str) -> Submission:
    """An XML camt file or the JSON shape of one notified entry; raises CamtError."""
    data = await request.read()
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            body = load_json(data, decimals=True)
        except FieldError as error:
            problem = CamtError(error.reason, str(error))
            await in_thread(connector.reject, data, source, problem)
            raise problem from None
        return await in_thread(connector.submit_json, body, source, data)
    return await in_thread(connector.submit_xml, data, source)


def camt_error(view: web.View, error: CamtError) -> web.Response:
    return view.json({"error": error.reason, "message": str(error)}, status=400)


@app.page("/api/v1/bank/camt")
class BankCamt(web.View):
    async def post(self, request: web.Request) -> web.Response:
        try:
            submission = await submit_body(request, "api:/api/v1/bank/camt")
        except CamtError as error:
            return camt_error(self, error)
        return self.json(submission.as_json(), status=202)


@app.timer(INBOX_SWEEP_S)
async def sweep_bank_inbox() -> None:
    """Never raises: a timer that raises stops the worker (each file's failure is its
    own inside `sweep`; the directory itself failing is logged and tried again)."""
    try:
        outcomes = await in_thread(sweep, settings.bank_inbox, connector)
    except Exception:
        log.exception("bank inbox: %s could not be swept; trying again", settings.bank_inbox)
        return
    for name, outcome in outcomes:
        log.info("bank inbox: %s: %s", name, outcome)


def publish_intraday_balance(account_id: str) -> dict[str, Any]:
    """Ask the bank API for the account's balance and publish it (tier 2); blocking."""
    if settings.bank_api is None:
        raise IntradayError("no intraday bank API configured (TOKENGINE_BANK_API)")
    balance = fetch_balance(settings.bank_api, account_id)
    try:  # what the connector checks of every bank event: the account's currency and scale
        check_bank_event(balance, assets())
    except FieldError as error:
        raise IntradayError(f"the bank's balance of {account_id}: {error}") from None
    connector.producer.produce(
        settings.topic_prefix + catalogue.BANK_BALANCES,
        codec.encode(catalogue.BANK_BALANCES, balance),
        account_id.encode(),
    )
    if connector.producer.flush(30) != 0:
        raise IntradayError("bank balance not acknowledged by the broker")
    return balance


def bank_accounts() -> list[str]:
    return sorted(a.bank_account for a in assets().assets.values() if a.bank_account)


@app.timer(settings.intraday_interval_s, on_leader=True)
async def poll_intraday_balances() -> None:
    if settings.bank_api is None:
        return
    for account_id in bank_accounts():
        try:
            await in_thread(publish_intraday_balance, account_id)
        except IntradayError as error:
            log.warning("intraday balance of %s: %s", account_id, error)
