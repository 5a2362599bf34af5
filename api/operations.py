"""The operator's decisions over HTTP: deposit-address bindings, prices, the circuit
breaker, API keys. Each is checked by the rules the CLI applies (`topics.operator_records`),
records the calling key's id and label as its actor (never the key), and answers once the
broker has acknowledged it.

`POST /api/v1/bindings` {chain, address, account}; `POST /api/v1/prices` {asset,
usd_price}; `POST /api/v1/breaker` {action: trip|suspend|reset, scope, reason} and `GET`
(the newest state per scope); `POST /api/v1/keys` {role, accounts, label} (the key is in
this answer only), `GET /api/v1/keys`, `POST /api/v1/keys/{key_id}/revoke`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from faust import web

from api.access import Access, principal
from api.responses import error, refused
from core import access
from core.fields import FieldError, load_json
from core.reasons import Reason
from streams.app import Engine
from topics import catalogue, operator_records
from topics.authentication import SigningProducer
from topics.breaker import read_breaker_states
from topics.jsonable import jsonable
from topics.kafka import NotAcknowledged, make_producer


class Operations:
    def __init__(self, engine: Engine, keys: Access) -> None:
        self.engine, self.keys = engine, keys
        prefix = engine.settings.topic_prefix
        self.producer = SigningProducer(make_producer(engine.bootstrap), prefix, engine.auth)
        self.lock = asyncio.Lock()  # one decision at a time through the one producer
        self.install(engine.app)

    async def body(self, request: web.Request) -> dict[str, Any]:
        body = load_json(await request.read())
        if not isinstance(body, dict):
            raise FieldError(Reason.INVALID_JSON, "body", "a JSON object")
        return body

    async def published(
        self, view: web.View, topic: str, key: str, record: dict[str, Any], shown: dict, status
    ) -> web.Response:
        """`shown` with `status` once the record is acknowledged; 503 if it was not."""
        try:
            await self.publish(topic, key, record)
        except NotAcknowledged as problem:
            return error(view, 503, Reason.UNAVAILABLE, f"{problem}; send it again")
        return view.json(jsonable(shown), status=status)

    async def publish(self, topic: str, key: str, record: dict[str, Any]) -> None:
        settings = self.engine.settings
        loop = asyncio.get_running_loop()
        async with self.lock:
            await loop.run_in_executor(
                None,
                operator_records.publish,
                self.producer,
                settings.topic_prefix,
                self.engine.codec,
                topic,
                key,
                record,
            )

    async def decide(self, view: web.View, request: web.Request, kind: str) -> web.Response:
        actor = principal(request).actor
        assets = self.engine.assets
        loop = asyncio.get_running_loop()
        try:
            body = await self.body(request)
            if kind == "binding":
                key, record = await loop.run_in_executor(
                    None,
                    operator_records.binding,
                    self.engine.settings,
                    assets,
                    body.get("chain"),
                    body.get("address"),
                    body.get("account"),
                    actor,
                )
                topic = catalogue.ADDRESS_BINDINGS
            elif kind == "price":
                record = operator_records.price(
                    assets, body.get("asset"), body.get("usd_price"), actor
                )
                topic, key = catalogue.PRICES, record["asset"]
            else:
                record = operator_records.breaker_change(
                    assets,
                    body.get("action"),
                    body.get("scope", "global"),
                    body.get("reason"),
                    actor,
                )
                topic, key = catalogue.BREAKER_STATE, record["scope"]
        except FieldError as problem:
            return refused(view, problem)
        return await self.published(view, topic, key, record, record, 201)

    async def create_key(self, view: web.View, request: web.Request) -> web.Response:
        try:
            body = await self.body(request)
            token, record = operator_records.api_key(
                body.get("role"), body.get("accounts", []), body.get("label", ""),
                principal(request).actor,
            )  # fmt: skip
        except FieldError as problem:
            return refused(view, problem)
        shown = {k: v for k, v in record.items() if k != "secret_sha256"}
        return await self.published(
            view, catalogue.API_KEYS, record["key_id"], record, {**shown, "key": token}, 201
        )

    async def revoke_key(self, view: web.View, request: web.Request, key_id: str):
        record = self.keys.record(key_id)
        if record is None:
            return error(view, 404, Reason.NOT_FOUND, f"no key {key_id}")
        now = datetime.now(UTC)
        revoked = access.revoked(record, principal(request).actor, now)
        shown = {k: v for k, v in revoked.items() if k != "secret_sha256"}
        return await self.published(view, catalogue.API_KEYS, key_id, revoked, shown, 200)

    def breaker_states(self) -> dict[str, Any]:
        settings = self.engine.settings
        return read_breaker_states(
            self.engine.bootstrap, settings.topic_prefix, self.engine.codec, self.engine.auth
        )

    def install(self, app) -> None:
        ops = self

        @app.page("/api/v1/bindings")
        class Bindings(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await ops.decide(self, request, "binding")

        @app.page("/api/v1/prices")
        class Prices(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await ops.decide(self, request, "price")

        @app.page("/api/v1/breaker")
        class Breaker(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await ops.decide(self, request, "breaker")

            async def get(self, request: web.Request) -> web.Response:
                states = await asyncio.get_running_loop().run_in_executor(None, ops.breaker_states)
                return self.json(jsonable(states))

        @app.page("/api/v1/keys")
        class Keys(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await ops.create_key(self, request)

            async def get(self, request: web.Request) -> web.Response:
                return self.json(jsonable({"keys": ops.keys.listing()}))

        @app.page("/api/v1/keys/{key_id}/revoke")
        class Revoke(web.View):
            async def post(self, request: web.Request, key_id: str) -> web.Response:
                return await ops.revoke_key(self, request, key_id)
