"""Bank inputs hosted by a worker: the bank connector's lifetime, the drop directory, the
intraday balance poll, and `POST /api/v1/bank/camt`.

The connector (`connectors.bank`) turns what arrives into bank events; this module only
decides when it runs: on an HTTP request, every `INBOX_SWEEP_S` for the drop directory,
and every `TOKENGINE_INTRADAY_INTERVAL_S` (leader only) for the intraday balances (the
client: `connectors.intraday`). A balance is checked against its bank account like every
bank event (`core.bank_events`) before it is published. No timer raises.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode
from faust import web

from api.access import principal
from api.responses import error
from connectors.bank import BankConnector, ForbiddenAccount, Submission
from connectors.bank_inbox import sweep
from connectors.intraday import IntradayError, fetch_balance
from core.access import BANK
from core.bank_events import check_bank_event
from core.camt import CamtError
from core.fields import FieldError, load_json
from streams.app import Engine
from topics import catalogue
from topics.authentication import SigningProducer
from topics.kafka import flush, make_producer

log = logging.getLogger(__name__)

INBOX_SWEEP_S = 1.0


async def in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class ConnectorService(mode.Service):
    def __init__(self, connector: BankConnector) -> None:
        super().__init__()
        self.connector = connector

    async def on_start(self) -> None:
        self.connector.start()

    async def on_stop(self) -> None:
        await self.loop.run_in_executor(None, self.connector.stop)


class BankIntake:
    """The worker's bank connector and when it runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.connector = BankConnector(
            engine.settings.kafka or "",
            engine.settings.topic_prefix,
            engine.codec,
            SigningProducer(
                make_producer(engine.bootstrap), engine.settings.topic_prefix, engine.auth
            ),
            engine.assets,
        )
        app = engine.app
        app.service(ConnectorService(self.connector))
        app.timer(INBOX_SWEEP_S, name="bank_inbox")(self.sweep_inbox)
        app.timer(self.settings.intraday_interval_s, on_leader=True, name="intraday")(
            self.poll_intraday_balances
        )

        intake = self

        @app.page("/api/v1/bank/camt")
        class BankCamt(web.View):
            async def post(self, request: web.Request) -> web.Response:
                try:
                    submission = await intake.submit_body(request, "api:/api/v1/bank/camt")
                except CamtError as problem:
                    return camt_error(self, problem)
                return self.json(submission.as_json(), status=202)

    async def submit_body(self, request: web.Request, source: str) -> Submission:
        """An XML camt file or the JSON shape of one notified entry, for bank accounts the
        caller's BANK key was issued for; raises CamtError (`ForbiddenAccount`: not
        recorded)."""
        caller = principal(request)

        def may_post(account_id: str) -> bool:
            return caller is not None and caller.role == BANK and caller.covers(account_id)

        data = await request.read()
        if data.lstrip()[:1] in (b"{", b"["):
            try:
                body = load_json(data, decimals=True)
            except FieldError as problem:
                refusal = CamtError(problem.reason, str(problem))
                await in_thread(self.connector.reject, data, source, refusal)
                raise refusal from None
            return await in_thread(self.connector.submit_json, body, source, data, may_post)
        return await in_thread(self.connector.submit_xml, data, source, may_post)

    async def sweep_inbox(self) -> None:
        """Never raises: a timer that raises stops the worker (each file's failure is its
        own inside `sweep`; the directory itself failing is logged and tried again)."""
        try:
            outcomes = await in_thread(sweep, self.settings.bank_inbox, self.connector)
        except Exception:
            log.exception(
                "bank inbox: %s could not be swept; trying again", self.settings.bank_inbox
            )
            return
        for name, outcome in outcomes:
            log.info("bank inbox: %s: %s", name, outcome)

    def publish_intraday_balance(self, account_id: str) -> dict[str, Any]:
        """Ask the bank API for the account's balance and publish it (tier 2); blocking."""
        if self.settings.bank_api is None:
            raise IntradayError("no intraday bank API configured (TOKENGINE_BANK_API)")
        balance = fetch_balance(self.settings.bank_api, account_id)
        try:  # what the connector checks of every bank event: the account's currency, scale
            check_bank_event(balance, self.engine.assets)
        except FieldError as problem:
            raise IntradayError(f"the bank's balance of {account_id}: {problem}") from None
        producer = self.connector.producer
        producer.produce(
            self.settings.topic_prefix + catalogue.BANK_BALANCES,
            self.engine.codec.encode(catalogue.BANK_BALANCES, balance),
            account_id.encode(),
        )
        try:
            flush(producer, "the bank balance")
        except RuntimeError as problem:
            raise IntradayError(str(problem)) from None
        return balance

    def bank_accounts(self) -> list[str]:
        return sorted(self.engine.assets.bank_accounts)

    async def poll_intraday_balances(self) -> None:
        if self.settings.bank_api is None:
            return
        for account_id in self.bank_accounts():
            try:
                await in_thread(self.publish_intraday_balance, account_id)
            except IntradayError as problem:
                log.warning("intraday balance of %s: %s", account_id, problem)


def camt_error(view: web.View, problem: CamtError) -> web.Response:
    status = 403 if isinstance(problem, ForbiddenAccount) else 400
    return error(view, status, problem.reason, str(problem))
