"""Deposit addresses over HTTP: a user's address from its chain's pool, and assignments.

`POST /api/v1/accounts/{account_id}/deposit-addresses` {chain}: the account's address
(`topics.address_binder`: the same one while its binding lives, 200; a new binding, 201;
503 `pool_exhausted` when the pool has no free address), for a client key of that
account or an operator. `POST /api/v1/suspense/assignments` {deposit_id, asset, amount,
account, note}: an operator assigns a deposit held in suspense (`streams.ledger.suspense`
checks it against what suspense holds; the record names the operator as its actor, and
the audit log shows it).
"""

from __future__ import annotations

import asyncio

from faust import web

from api.access import principal
from api.operations import Operations
from api.responses import error, refused
from core.fields import SUSPENSE_ACCOUNT, FieldError
from core.reasons import Reason
from streams.app import Engine, ViewService
from topics import catalogue, operator_records
from topics.address_binder import Binder, PoolExhausted
from topics.jsonable import jsonable


def install(engine: Engine, operations: Operations) -> None:
    binder = Binder(engine.bootstrap, engine.codec, operations.producer, engine.assets)
    engine.app.service(ViewService(binder.view))

    @engine.app.page("/api/v1/accounts/{account_id}/deposit-addresses")
    class DepositAddresses(web.View):
        async def post(self, request: web.Request, account_id: str) -> web.Response:
            loop = asyncio.get_running_loop()
            try:
                body = await operations.body(request)
                bound = await loop.run_in_executor(
                    None, binder.bind, body.get("chain"), account_id, principal(request).actor
                )
            except FieldError as problem:
                return refused(self, problem)
            except PoolExhausted as problem:
                return error(self, 503, Reason.POOL_EXHAUSTED, str(problem))
            except TimeoutError as problem:
                return error(self, 503, Reason.UNAVAILABLE, f"{problem}; send it again")
            return self.json(jsonable(bound.shown()), status=201 if bound.new else 200)

    @engine.app.page("/api/v1/suspense/assignments")
    class Assignments(web.View):
        async def post(self, request: web.Request) -> web.Response:
            try:
                body = await operations.body(request)
                record = operator_records.assignment(engine.assets, body, principal(request).actor)
            except FieldError as problem:
                return refused(self, problem)
            return await operations.published(
                self, catalogue.DEPOSIT_ASSIGNMENTS, SUSPENSE_ACCOUNT, record, record, 202
            )
