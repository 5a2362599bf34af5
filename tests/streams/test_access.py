"""Who may call what: every route with no key, a wrong key, a revoked key, a key of each
role and a client key of another account, against a real worker; nothing is produced for
a refused call; foreign Host and Origin, undeclared bodies, Faust's own pages; revocation
seen by another worker within a second; the per-key rate limit."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest

from core.access import AUDITOR, BANK, CLIENT, OPERATOR
from sinks.migrate import migrate
from tests.helpers import read_all, read_topic
from tests.http import call, keys_for
from topics import catalogue
from topics.codec import SingleObjectCodec
from topics.operator_records import issue_key

IBAN = "GB33BUKB20201555555555"
ETH_ADDRESS = "0x" + "ab" * 20
NOBODY, WRONG, REVOKED, OTHER_CLIENT, OTHER_BANK = "none", "wrong", "revoked", "other", "obank"
CALLERS = (NOBODY, WRONG, REVOKED, CLIENT, OTHER_CLIENT, BANK, OTHER_BANK, OPERATOR, AUDITOR)
ANYONE = set(CALLERS)
# what the allowed calls write (a refused call must add nothing)
WRITTEN = {
    catalogue.DEPOSIT_REQUESTS: 1,
    catalogue.WITHDRAWAL_REQUESTS: 1,
    catalogue.TRANSFER_REQUESTS: 1,
    catalogue.BANK_NOTIFICATIONS: 2,  # /bank/camt and /reconciliation/camt054
    catalogue.BANK_STATEMENTS: 0,
    catalogue.ADDRESS_BINDINGS: 1,
    catalogue.PRICES: 1,
    catalogue.BREAKER_STATE: catalogue.ACCOUNT_PARTITIONS,  # one reset by a key, everywhere
    catalogue.DEAD_LETTERS: 0,
}


def count(settings, topic: str, at_least: int) -> int:
    """How many records `topic` has, once it has at least `at_least`."""
    read_topic(settings, topic, until_count=at_least, timeout_s=30)
    records = read_all(settings, topic, quiet_s=1.5)
    if topic == catalogue.BREAKER_STATE:  # reconciliation's own changes are not counted
        records = [r for r in records if r["value"]["actor"].startswith("key:")]
    return len(records)


def now() -> str:
    return datetime.now(UTC).isoformat()


def deposit() -> dict:
    return {"request_id": f"d-{uuid.uuid4().hex[:8]}", "account_id": "alice", "asset": "ETH",
            "amount": "0.1", "tx_hash": "0x" + uuid.uuid4().hex, "created_at": now()}  # fmt: skip


def withdrawal() -> dict:
    return {"request_id": f"w-{uuid.uuid4().hex[:8]}", "account_id": "alice", "asset": "ETH",
            "amount": "0.1", "destination_address": ETH_ADDRESS, "created_at": now()}  # fmt: skip


def transfer() -> dict:
    return {"request_id": f"t-{uuid.uuid4().hex[:8]}", "account_id": "alice",
            "to_account_id": "bob", "asset": "ETH", "amount": "0.1",
            "created_at": now()}  # fmt: skip


def notification() -> dict:
    return {"message_id": f"M-{uuid.uuid4().hex[:8]}", "account_id": IBAN, "currency": "USD",
            "credit_debit_indicator": "CRDT", "amount": "5.00",
            "bank_reference": f"B-{uuid.uuid4().hex[:6]}", "end_to_end_id": None}  # fmt: skip


# (method, path, body maker, who may: status when allowed, status when not)
# a caller outside `allowed` gets 401 without a valid key, else 403
ROUTES = [
    ("GET", "/api/v1/health", None, ANYONE, 200),
    ("GET", "/api/v1/reconciliation/health", None, ANYONE, 200),
    ("GET", "/metrics", None, {OPERATOR, AUDITOR}, 200),
    ("GET", "/api/v1/stats", None, {OPERATOR, AUDITOR}, 200),
    ("POST", "/api/v1/deposits", deposit, {CLIENT}, 202),
    ("POST", "/api/v1/withdrawals", withdrawal, {CLIENT}, 202),
    ("POST", "/api/v1/transfers", transfer, {CLIENT}, 202),
    ("GET", "/api/v1/accounts/alice/balances", None, {CLIENT, OPERATOR, AUDITOR}, 200),
    ("GET", "/api/v1/accounts/alice/requests/nope", None, {CLIENT, OPERATOR, AUDITOR}, 404),
    ("GET", "/api/v1/requests/nope", None, {CLIENT, OTHER_CLIENT, OPERATOR, AUDITOR}, 404),
    ("POST", "/api/v1/bank/camt", notification, {BANK}, 202),
    ("POST", "/api/v1/reconciliation/camt054", notification, {BANK}, 200),
    ("POST", "/api/v1/reconciliation/intraday/all", None, {OPERATOR}, 503),  # no bank API
    (
        "POST",
        "/api/v1/reconciliation/discrepancies/nope",
        lambda: {"status": "RESOLVED"},
        {OPERATOR},
        404,
    ),  # fmt: skip
    ("GET", "/api/v1/reconciliation/summary", None, {OPERATOR, AUDITOR}, 200),
    ("GET", "/api/v1/audit", None, {OPERATOR, AUDITOR}, 200),
    ("GET", "/api/v1/wallets", None, {OPERATOR, AUDITOR}, 200),
    (
        "POST",
        "/api/v1/bindings",
        lambda: {"chain": "bank", "address": f"REF{uuid.uuid4().hex[:8]}", "account": "alice"},
        {OPERATOR},
        201,
    ),  # fmt: skip
    ("POST", "/api/v1/prices", lambda: {"asset": "ETH", "usd_price": "2500"}, {OPERATOR}, 201),
    (
        "POST",
        "/api/v1/breaker",
        lambda: {"action": "reset", "scope": "global", "reason": "test"},
        {OPERATOR},
        201,
    ),
    ("GET", "/api/v1/breaker", None, {OPERATOR, AUDITOR}, 200),
    ("GET", "/api/v1/keys", None, {OPERATOR}, 200),
    ("POST", "/api/v1/keys", lambda: {"role": "auditor", "label": "t"}, {OPERATOR}, 201),
]
REFUSED_ON_BODY = {  # the client of another account passes the route, not the body
    ("POST", "/api/v1/deposits"),
    ("POST", "/api/v1/withdrawals"),
    ("POST", "/api/v1/transfers"),
}


@pytest.fixture
def keys(settings) -> dict[str, str | None]:
    codec = SingleObjectCodec()
    roles = keys_for(settings)
    revoked, record = issue_key(settings, codec, CLIENT, ["alice"], "to revoke", "tests")
    other, _ = issue_key(settings, codec, CLIENT, ["bob"], "bob only", "tests")
    other_bank, _ = issue_key(settings, codec, BANK, ["DE89370400440532013000"], "b", "tests")
    alice, _ = issue_key(settings, codec, CLIENT, ["alice"], "alice", "tests")
    return {
        NOBODY: None,
        WRONG: "tke_0123456789abcdef_" + "A" * 43,
        REVOKED: (revoked, record["key_id"]),
        CLIENT: alice,
        OTHER_CLIENT: other,
        BANK: roles[BANK],
        OTHER_BANK: other_bank,
        OPERATOR: roles[OPERATOR],
        AUDITOR: roles[AUDITOR],
    }


def expected(caller: str, method: str, path: str, allowed: set, status: int) -> int:
    if caller in allowed:
        return status
    if allowed is ANYONE:
        return 200
    if caller in (NOBODY, WRONG, REVOKED):
        return 401
    return 403


def test_every_route_answers_each_caller_as_its_role_allows(start_worker, settings, keys):
    migrate(settings.database_url)  # the audit log exists
    worker = start_worker()
    url = worker.api_url
    revoked, revoked_id = keys[REVOKED]
    status, _ = call("POST", f"{url}/api/v1/keys/{revoked_id}/revoke", key=keys[OPERATOR])
    assert status == 200
    keys = {**keys, REVOKED: revoked}
    for method, path, body, allowed, status in ROUTES:
        for caller in CALLERS:
            want = expected(caller, method, path, allowed, status)
            got, answer = call(method, url + path, body() if body else None, 30, key=keys[caller])
            assert got == want, (method, path, caller, answer)
            if got in (401, 403):
                assert answer["error"] in ("unauthenticated", "forbidden"), answer
    for method, path in REFUSED_ON_BODY:
        body = next(b for m, p, b, _, _ in ROUTES if (m, p) == (method, path))
        got, answer = call(method, url + path, body(), key=keys[OTHER_CLIENT])
        assert (got, answer["error"], answer["field"]) == (403, "forbidden", "account_id")
    produced = {topic: count(settings, topic, n) for topic, n in WRITTEN.items()}
    assert produced == WRITTEN  # the refused calls wrote nothing
    # the health check is open: status only, unless an overseer asks
    _, open_body = call("GET", url + "/api/v1/reconciliation/health", key=None)
    _, full = call("GET", url + "/api/v1/reconciliation/health", key=keys[AUDITOR])
    assert set(open_body) == {"status"} and "levels" in full
    # Faust's own pages (the tables!) are not served
    for path in ("/", "/router/", "/table/accounts/", "/graph/"):
        got, _ = call("GET", url + path, key=keys[OPERATOR])
        assert got == 404, path


def raw_request(url: str, headers: dict[str, str], data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data, headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_foreign_host_origin_and_undeclared_bodies_are_refused(start_worker, settings):
    worker = start_worker()
    client = keys_for(settings)[CLIENT]
    url = worker.api_url + "/api/v1/deposits"
    auth = {"Authorization": f"Bearer {client}"}
    body = json.dumps(deposit()).encode()
    json_type = {"Content-Type": "application/json"}
    assert raw_request(url, {**auth, **json_type}, body) == 202  # the control
    evil = {**auth, **json_type, "Origin": "http://evil.example"}
    assert raw_request(url, evil, body) == 403
    rebound = {**auth, **json_type, "Host": "evil.example"}
    assert raw_request(url, rebound, body) == 403
    assert raw_request(worker.api_url + "/api/v1/health", {"Host": "evil.example:80"}) == 403
    # a name that looks like an address is still a name; an IP address is no rebinding
    assert raw_request(worker.api_url + "/api/v1/health", {"Host": "10.0.0.5.evil.example"}) == 403
    assert raw_request(worker.api_url + "/api/v1/health", {"Host": "172.18.0.7:6066"}) == 200
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        assert raw_request(url, {**auth, "Content-Type": content_type}, body) == 415
    assert count(settings, catalogue.DEPOSIT_REQUESTS, 1) == 1


def test_a_revoked_key_is_refused_by_every_worker_within_a_second(start_worker, settings):
    first = start_worker()
    second = start_worker(settings=settings.with_overrides(api_rate_per_s=5.0))
    operator = keys_for(settings)[OPERATOR]
    key, record = issue_key(settings, SingleObjectCodec(), AUDITOR, [], "short-lived", "tests")
    for worker in (first, second):
        assert call("GET", worker.api_url + "/api/v1/stats", key=key)[0] == 200
    status, answer = call(
        "POST", f"{first.api_url}/api/v1/keys/{record['key_id']}/revoke", key=operator
    )
    assert status == 200 and answer["status"] == "REVOKED" and answer["actor"].startswith("key:")
    revoked_at = time.monotonic()
    while call("GET", second.api_url + "/api/v1/stats", key=key)[0] != 401:
        assert time.monotonic() - revoked_at < 1.0, "the other worker still takes the key"
        time.sleep(0.02)
    # the second worker allows 5 requests a second per key, in bursts of 10
    statuses = [call("GET", second.api_url + "/api/v1/stats", key=operator)[0] for _ in range(25)]
    assert statuses[:10] == [200] * 10 and 429 in statuses
