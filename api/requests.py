"""Requests in, results and balances out: the API of users and upstream producers.

`POST /api/v1/deposits|withdrawals|transfers` validate like the CLI (`core.requests`) and
produce one request event for an account the caller's key acts for (403 otherwise);
`202 SUBMITTED` is answered only once the broker has acknowledged it (a crash after it
loses nothing the client was told was accepted), 503 when it did not (the same request,
same id, may be sent again). `GET /api/v1/requests/{id}` and
`GET /api/v1/accounts/{account}/requests/{id}` answer from the request view
(`streams.request_view`; a CLIENT key sees its accounts' requests only: another's is not
found); `GET /api/v1/accounts/{id}/balances` from the ledger's table (the worker owning
the account's partition answers).
"""

from __future__ import annotations

import asyncio
import logging

from faust import web

from api.access import principal
from api.responses import error, refused
from core.access import CLIENT
from core.fields import FieldError, load_json
from core.reasons import Reason
from core.requests import build_request
from streams.app import Engine
from streams.ledger.agent import LedgerAgent
from streams.ledger.invariants import user_balances
from streams.request_view import RequestView
from topics import catalogue
from topics.jsonable import jsonable

log = logging.getLogger(__name__)

ACKNOWLEDGEMENT_TIMEOUT_S = 30.0


def install(engine: Engine, ledger: LedgerAgent, requests: RequestView) -> None:
    app, accounts = engine.app, ledger.accounts

    async def submit(view: web.View, request: web.Request, kind: str) -> web.Response:
        try:
            record = build_request(kind, load_json(await request.read()), engine.assets)
        except FieldError as problem:
            return refused(view, problem)
        caller = principal(request)
        if caller is None or not caller.covers(record["account_id"]):
            message = "this key does not act for that account"
            return error(view, 403, Reason.FORBIDDEN, message, "account_id")
        topic = catalogue.REQUEST_TOPICS[kind]
        value = engine.codec.encode(topic, record)
        try:
            delivery = await engine.raw_topic(topic).send(
                key=record["account_id"].encode(), value=value
            )
            # the broker has it (shielded: a timeout must not cancel Faust's own future)
            await asyncio.wait_for(asyncio.shield(delivery), ACKNOWLEDGEMENT_TIMEOUT_S)
        except Exception as problem:  # the client may send the same request (same id) again
            log.warning("request %s not acknowledged: %s", record["request_id"], problem)
            message = "the request was not acknowledged by the broker; send it again"
            return error(view, 503, Reason.UNAVAILABLE, message)
        return view.json({"request_id": record["request_id"], "status": "SUBMITTED"}, status=202)

    @app.page("/api/v1/deposits")
    class Deposits(web.View):
        async def post(self, request: web.Request) -> web.Response:
            return await submit(self, request, "deposit")

    @app.page("/api/v1/withdrawals")
    class Withdrawals(web.View):
        async def post(self, request: web.Request) -> web.Response:
            return await submit(self, request, "withdrawal")

    @app.page("/api/v1/transfers")
    class Transfers(web.View):
        async def post(self, request: web.Request) -> web.Response:
            return await submit(self, request, "transfer")

    def status(view: web.View, request, request_id: str, account_id: str | None):
        result = requests.results.get(request_id, account_id)
        caller = principal(request)
        client = caller is not None and caller.role == CLIENT
        if result is not None and client and not caller.covers(result["account_id"]):
            result = None  # another account's request: as if there were none
        if result is None:
            return error(view, 404, Reason.NOT_FOUND, f"no result for request {request_id}")
        return view.json(jsonable(result))

    @app.page("/api/v1/requests/{request_id}")
    class RequestStatus(web.View):
        async def get(self, request: web.Request, request_id: str) -> web.Response:
            return status(self, request, request_id, None)

    @app.page("/api/v1/accounts/{account_id}/requests/{request_id}")
    class AccountRequestStatus(web.View):
        async def get(self, request: web.Request, account_id: str, request_id: str):
            return status(self, request, request_id, account_id)

    @app.page("/api/v1/accounts/{account_id}/balances")
    class AccountBalances(web.View):
        @app.table_route(table=accounts, match_info="account_id")
        async def get(self, request: web.Request, account_id: str) -> web.Response:
            record = accounts.get(account_id)
            balances = user_balances(record) if record is not None else {}
            version = record.version if record else 0
            body = {"account_id": account_id, "balances": balances, "version": version}
            return self.json(jsonable(body))
