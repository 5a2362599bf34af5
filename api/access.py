"""Who may call the HTTP API, checked once in front of every route (an aiohttp middleware).

In order: the `Host` must be one the API serves or an IP address (DNS rebinding needs a
name: a page on evil.example that rebinds its name to us still sends `Host: evil.example`;
an IP is what Prometheus sends a container it found by DNS) and a browser `Origin` one
allowed (cross-site requests); the route must be in `ROUTES` (default deny: a route
nobody listed, such as Faust's own table pages, answers 404); then, unless the route is
open, `Authorization: Bearer <key>` must be an active key (401) of a role the route
allows (403), and a CLIENT key must cover the `{account_id}` of the path (403); the key's
request rate is bounded (429); a body must be declared JSON (or XML, for bank files)
(415). Answers use the API's error shape. What a key may do inside a request body (the
account of a submission, the bank accounts of a file) the handler checks against
`principal(request)`.

The keys are the api-keys topic folded into a whole-topic view (`core.access.KeyRing`):
every worker knows a key, and its revocation, within a view's fetch wait (~0.1 s).
A key that does not authenticate is tried once more after the view has caught up (a key
made a moment ago on another worker).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web as aiohttp_web

from api.responses import error_body
from core import access
from core.access import AUDITOR, BANK, CLIENT, OPERATOR, KeyRing, Principal
from core.reasons import Reason
from streams.app import Engine
from topics import catalogue

READERS = frozenset({CLIENT, OPERATOR, AUDITOR})
OVERSEERS = frozenset({OPERATOR, AUDITOR})
OPEN: frozenset[str] = frozenset()
METRICS = frozenset({"METRICS"})  # open or OVERSEERS, as configured

# (method, route) -> the roles that may call it (OPEN: anyone)
ROUTES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/health"): OPEN,
    ("GET", "/api/v1/reconciliation/health"): OPEN,  # status only without an overseer key
    ("GET", "/metrics"): METRICS,
    ("GET", "/api/v1/stats"): OVERSEERS,
    ("POST", "/api/v1/deposits"): frozenset({CLIENT}),
    ("POST", "/api/v1/withdrawals"): frozenset({CLIENT}),
    ("POST", "/api/v1/transfers"): frozenset({CLIENT}),
    ("GET", "/api/v1/requests/{request_id}"): READERS,
    ("GET", "/api/v1/accounts/{account_id}/requests/{request_id}"): READERS,
    ("GET", "/api/v1/accounts/{account_id}/balances"): READERS,
    ("POST", "/api/v1/bank/camt"): frozenset({BANK}),
    ("POST", "/api/v1/reconciliation/camt054"): frozenset({BANK}),
    ("POST", "/api/v1/reconciliation/eod"): frozenset({BANK}),
    ("POST", "/api/v1/reconciliation/intraday/{account_id}"): frozenset({OPERATOR}),
    ("POST", "/api/v1/reconciliation/intradey/{account_id}"): frozenset({OPERATOR}),
    ("POST", "/api/v1/reconciliation/discrepancies/{discrepancy_id}"): frozenset({OPERATOR}),
    ("GET", "/api/v1/reconciliation/summary"): OVERSEERS,
    ("GET", "/api/v1/audit"): OVERSEERS,
    ("GET", "/api/v1/wallets"): OVERSEERS,
    ("POST", "/api/v1/bindings"): frozenset({OPERATOR}),
    ("POST", "/api/v1/accounts/{account_id}/deposit-addresses"): frozenset({CLIENT, OPERATOR}),
    ("POST", "/api/v1/suspense/assignments"): frozenset({OPERATOR}),
    ("POST", "/api/v1/prices"): frozenset({OPERATOR}),
    ("GET", "/api/v1/breaker"): OVERSEERS,
    ("POST", "/api/v1/breaker"): frozenset({OPERATOR}),
    ("GET", "/api/v1/keys"): frozenset({OPERATOR}),
    ("POST", "/api/v1/keys"): frozenset({OPERATOR}),
    ("POST", "/api/v1/keys/{key_id}/revoke"): frozenset({OPERATOR}),
}
BANK_FILE_ROUTES = {
    "/api/v1/bank/camt",
    "/api/v1/reconciliation/camt054",
    "/api/v1/reconciliation/eod",
}
JSON_TYPES = frozenset({"application/json"})
BANK_FILE_TYPES = frozenset({"application/json", "application/xml", "text/xml"})
PRINCIPAL = "tokengine.principal"

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def principal(request) -> Principal | None:
    """The caller's key, as the access middleware authenticated it (None on open routes
    without a key). `request` is Faust's request or aiohttp's."""
    return getattr(request, "_request", request).get(PRINCIPAL)


def refusal(status: int, reason: str, message: str, **headers: str) -> aiohttp_web.Response:
    return aiohttp_web.json_response(
        error_body(reason, message), status=status, headers=headers or None
    )


@dataclass
class Bucket:
    tokens: float
    at: float


class RateLimit:
    """A token bucket per key: `rate` requests a second, bursts of twice that."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate = rate_per_s
        self.capacity = max(1.0, 2 * rate_per_s)
        self.buckets: dict[str, Bucket] = {}

    def allow(self, key_id: str) -> bool:
        now = time.monotonic()
        bucket = self.buckets.setdefault(key_id, Bucket(self.capacity, now))
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def host_name(host: str) -> str:
    """`Host` without its port (an IPv6 literal without its brackets)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Access:
    """The keys a worker knows and the middleware that checks every request."""

    def __init__(self, engine: Engine) -> None:
        self.settings = engine.settings
        self.keys = KeyRing()
        self.view = engine.serve_view(
            [catalogue.API_KEYS], lambda _topic, record: self.keys.fold(record), "api-keys"
        )
        self.limit = RateLimit(engine.settings.api_rate_per_s)
        self.hosts = frozenset(h.lower() for h in engine.settings.api_allowed_hosts)
        self.origins = frozenset(engine.settings.api_allowed_origins)
        engine.app.web.web_app.middlewares.append(self.middleware)

    def authenticate(self, token: str) -> Principal | None:
        with self.view.lock:
            return self.keys.authenticate(token)

    def listing(self) -> list[dict]:
        with self.view.lock:
            return self.keys.listing()

    def record(self, key_id: str) -> dict | None:
        with self.view.lock:
            return self.keys.records.get(key_id)

    async def caller(self, request: aiohttp_web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        found = self.authenticate(token)
        if found is None and access.key_id_of(token) is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.view.wait_caught_up, 2.0)
            found = self.authenticate(token)
        return found

    def serves_host(self, name: str) -> bool:
        if name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    @aiohttp_web.middleware
    async def middleware(
        self, request: aiohttp_web.Request, handler: Handler
    ) -> aiohttp_web.StreamResponse:
        if not self.serves_host(host_name(request.host or "").lower()):
            return refusal(403, Reason.FORBIDDEN_ORIGIN, "this Host is not served")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.origins:
            return refusal(403, Reason.FORBIDDEN_ORIGIN, "cross-origin requests are refused")
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        roles = ROUTES.get((request.method, route))
        if roles is None:
            return refusal(404, Reason.NOT_FOUND, "no such endpoint")
        if roles is METRICS:
            roles = OPEN if self.settings.metrics_open else OVERSEERS
        caller = await self.caller(request)
        if roles is not OPEN:
            if caller is None:
                return refusal(
                    401,
                    Reason.UNAUTHENTICATED,
                    "an API key is required: Authorization: Bearer <key>",
                    **{"WWW-Authenticate": 'Bearer realm="tokengine"'},
                )
            if caller.role not in roles:
                return refusal(403, Reason.FORBIDDEN, f"a {caller.role.lower()} key may not")
            account = request.match_info.get("account_id")
            if caller.role == CLIENT and account is not None and not caller.covers(account):
                return refusal(403, Reason.FORBIDDEN, "this key does not act for that account")
        if caller is not None and not self.limit.allow(caller.key_id):
            return refusal(429, Reason.RATE_LIMITED, "too many requests", **{"Retry-After": "1"})
        if request.body_exists:
            allowed = BANK_FILE_TYPES if route in BANK_FILE_ROUTES else JSON_TYPES
            if request.content_type not in allowed:
                message = f"Content-Type: one of {', '.join(sorted(allowed))}"
                return refusal(415, Reason.UNSUPPORTED_MEDIA_TYPE, message)
        if caller is not None:
            request[PRINCIPAL] = caller
        return await handler(request)
