"""HTTP API served by each worker (Faust web views on its aiohttp server).

Owns the request-intake endpoints (`POST /api/v1/deposits|withdrawals|transfers`), which
validate like the CLI and produce one request event, plus `GET /api/v1/health`,
`GET /api/v1/stats` and `GET /metrics`. Errors answer with a machine-readable reason.
`202 SUBMITTED` is answered only once the broker has acknowledged the request (a crash
after it loses nothing the client was told was accepted); 503 when it did not.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust import web

from streams import metrics
from streams.app import app, assets, codec, raw_topic
from streams.intake_process import intake_ready
from streams.ledger import accounts
from streams.ledger_core import user_balances
from streams.request_view import view as request_results
from tokengine.fields import FieldError, load_json
from tokengine.requests import build_request
from topics import catalogue
from topics.jsonable import jsonable

log = logging.getLogger(__name__)

ACKNOWLEDGEMENT_TIMEOUT_S = 30.0
REQUEST_TOPICS = {
    "deposit": catalogue.DEPOSIT_REQUESTS,
    "withdrawal": catalogue.WITHDRAWAL_REQUESTS,
    "transfer": catalogue.TRANSFER_REQUESTS,
}


def error_body(reason: str, message: str, field: str | None = None) -> dict[str, Any]:
    body = {"error": reason, "message": message}
    if field:
        body["field"] = field
    return body


async def submit_request(view: web.View, request: web.Request, kind: str) -> web.Response:
    try:
        record = build_request(kind, load_json(await request.read()), assets())
    except FieldError as error:
        return view.json(error_body(error.reason, str(error), error.field), status=400)
    value = codec.encode(REQUEST_TOPICS[kind], record)
    try:
        delivery = await raw_topic(REQUEST_TOPICS[kind]).send(
            key=record["account_id"].encode(), value=value
        )
        # the broker has it (shielded: a timeout must not cancel Faust's own future)
        await asyncio.wait_for(asyncio.shield(delivery), ACKNOWLEDGEMENT_TIMEOUT_S)
    except Exception as error:  # the client may send the same request (same id) again
        log.warning("request %s not acknowledged by the broker: %s", record["request_id"], error)
        message = "the request was not acknowledged by the broker; send it again"
        return view.json(error_body("unavailable", message), status=503)
    return view.json({"request_id": record["request_id"], "status": "SUBMITTED"}, status=202)


@app.page("/api/v1/deposits")
class Deposits(web.View):
    async def post(self, request: web.Request) -> web.Response:
        return await submit_request(self, request, "deposit")


@app.page("/api/v1/withdrawals")
class Withdrawals(web.View):
    async def post(self, request: web.Request) -> web.Response:
        return await submit_request(self, request, "withdrawal")


@app.page("/api/v1/transfers")
class Transfers(web.View):
    async def post(self, request: web.Request) -> web.Response:
        return await submit_request(self, request, "transfer")


def request_status(view: web.View, request_id: str, account_id: str | None) -> web.Response:
    result = request_results.get(request_id, account_id)
    if result is None:
        return view.json(error_body("not_found", f"no result for request {request_id}"), status=404)
    return view.json(jsonable(result))


@app.page("/api/v1/requests/{request_id}")
class RequestStatus(web.View):
    async def get(self, request: web.Request, request_id: str) -> web.Response:
        return request_status(self, request_id, None)


@app.page("/api/v1/accounts/{account_id}/requests/{request_id}")
class AccountRequestStatus(web.View):
    async def get(self, request: web.Request, account_id: str, request_id: str) -> web.Response:
        return request_status(self, request_id, account_id)


@app.page("/api/v1/accounts/{account_id}/balances")
class AccountBalances(web.View):
    @app.table_route(table=accounts, match_info="account_id")
    async def get(self, request: web.Request, account_id: str) -> web.Response:
        record = accounts.get(account_id)
        balances = user_balances(record) if record is not None else {}
        return self.json(
            jsonable(
                {
                    "account_id": account_id,
                    "balances": balances,
                    "version": record.version if record else 0,
                }
            )
        )


def worker_ready() -> bool:
    assigned = app.consumer.assignment() if app.consumer else set()
    return intake_ready() and not app.rebalancing and (bool(assigned) or not app.agents)


@app.page("/api/v1/health")
class Health(web.View):
    async def get(self, request: web.Request) -> web.Response:
        ready = worker_ready()
        return self.json({"status": "ready" if ready else "starting"}, status=200 if ready else 503)


@app.page("/api/v1/stats")
class Stats(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json(
            {
                "events_processed": metrics.counter_total(metrics.events_processed),
                "dead_letters": metrics.counter_total(metrics.dead_letters),
            }
        )


@app.page("/metrics")
class Metrics(web.View):
    async def get(self, request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        return self.bytes(body, content_type=content_type.split(";")[0])
