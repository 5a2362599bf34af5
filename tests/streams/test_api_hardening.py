"""The HTTP API against hostile input: 4xx naming the problem, never 5xx, nothing produced
for a refused call, nothing lost once 202 is answered, no account sees another's request."""

from __future__ import annotations

import json
import signal

from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from tests.connectors.test_camt import camt054
from tests.helpers import read_topic, values
from tests.http import BANK_ROUTES, call
from tests.ledger_inputs import ETH_ADDRESS
from tests.streams.test_ledger_worker import wait_for
from tokengine.demo.scenario import camt053
from topics import catalogue

USD_ACCOUNT = "GB33BUKB20201555555555"
REQUEST_TOPICS = (
    catalogue.DEPOSIT_REQUESTS,
    catalogue.WITHDRAWAL_REQUESTS,
    catalogue.TRANSFER_REQUESTS,
)


def post(worker, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
    content_type = None if path in BANK_ROUTES else "application/json"  # a JSON endpoint
    return call("POST", f"{worker.api_url}{path}", body, 30, raw=raw, content_type=content_type)


def withdrawal(**changes) -> dict:
    body = {
        "account_id": "alice",
        "asset": "WEI",
        "amount": "5",
        "destination_address": ETH_ADDRESS,
    }
    return {**body, **changes}


HOSTILE = [
    # path, raw body, the error answered
    ("/api/v1/withdrawals", json.dumps(withdrawal(amount="1e400")).encode(), "invalid_amount"),
    ("/api/v1/withdrawals", json.dumps(withdrawal(amount="1E42")).encode(), "invalid_amount"),
    ("/api/v1/withdrawals", json.dumps(withdrawal(amount="١٠")).encode(), "invalid_amount"),
    ("/api/v1/withdrawals", b'{"amount": ' + b"1" * 5000 + b"}", "invalid_json"),
    ("/api/v1/withdrawals", b"[" * 100_000, "invalid_json"),
    ("/api/v1/withdrawals", b"\xff\xfe\xfd", "invalid_json"),
    (
        "/api/v1/deposits",
        json.dumps(
            {
                "account_id": "alice",
                "asset": "WEI",
                "amount": "5",
                "tx_hash": "0x1",
                "created_at": "9999-12-31T23:59:59.999999-23:59",  # OverflowError: a 500
            }
        ).encode(),
        "invalid_field",
    ),
    (
        "/api/v1/withdrawals",
        json.dumps(withdrawal(account_id="alice\n")).encode(),
        "invalid_field",
    ),
    (
        "/api/v1/transfers",
        json.dumps(
            {"account_id": "alice", "asset": "WEI", "amount": "1", "to_account_id": "clearing:WEI"}
        ).encode(),
        "invalid_field",
    ),
    (
        "/api/v1/reconciliation/camt054",
        json.dumps(
            {
                "message_id": "M-1",
                "account_id": USD_ACCOUNT,
                "currency": "USD",
                "credit_debit_indicator": "CRDT",
                "amount": "10.00",
                "bank_reference": "B-1",
                "booking_date": {"a": 1},  # a 500
            }
        ).encode(),
        "invalid_date",
    ),
    ("/api/v1/bank/camt", camt054("04", amount="1e10000000"), "invalid_amount"),  # froze the worker
    ("/api/v1/bank/camt", b"{" * 100_000, "invalid_json"),
    (
        "/api/v1/reconciliation/eod",
        camt053("E-1", USD_ACCOUNT, "../../../../eth-keystore", 0, 0, []),
        "invalid_date",
    ),
    ("/api/v1/reconciliation/discrepancies/x", b"[" * 100_000, "invalid_json"),
]


def test_hostile_bodies_are_refused_with_a_4xx_that_names_the_problem(start_worker) -> None:
    worker = start_worker()
    for path, raw, error in HOSTILE:
        status, answer = post(worker, path, raw=raw)
        assert (status, answer["error"]) == (400, error), (path, raw[:80], answer)
    assert call("GET", f"{worker.api_url}/api/v1/audit?cursor={'9' * 5000}")[0] == 400
    assert call("GET", f"{worker.api_url}/api/v1/health")[0] == 200


def test_another_account_reusing_a_request_id_never_replaces_its_result(settings, start_worker):
    worker = start_worker()
    assert post(worker, "/api/v1/withdrawals", withdrawal(request_id="same"))[0] == 202
    wait_for(lambda: call("GET", f"{worker.api_url}/api/v1/requests/same")[0] == 200, what="alice")
    mallory = withdrawal(request_id="same", account_id="mallory")
    assert post(worker, "/api/v1/withdrawals", mallory)[0] == 202
    path = f"{worker.api_url}/api/v1/accounts/mallory/requests/same"
    wait_for(lambda: call("GET", path)[0] == 200, what="mallory's result")
    assert call("GET", f"{worker.api_url}/api/v1/requests/same")[1]["account_id"] == "alice"
    assert (
        call("GET", f"{worker.api_url}/api/v1/accounts/alice/requests/same")[1]["account_id"]
        == "alice"
    )
    assert call("GET", path)[1]["account_id"] == "mallory"


def test_every_request_answered_202_is_on_its_topic_even_after_a_sigkill(settings, start_worker):
    # 202 was answered before the broker had the request: a crash lost it
    worker = start_worker()
    accepted = []
    for n in range(40):
        status, answer = post(worker, "/api/v1/withdrawals", withdrawal(request_id=f"k{n}"))
        assert status == 202
        accepted.append(answer["request_id"])
    worker.process.kill(signal.SIGKILL)
    on_topic = values(read_topic(settings, catalogue.WITHDRAWAL_REQUESTS, until_count=40))
    assert {r["request_id"] for r in on_topic} == set(accepted)


scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    "request_id", "account_id", "asset", "amount", "destination_address", "tx_hash",
    "output_index", "created_at", "kind", "to_account_id", "destination_asset",
    "deposit_tx_hash", "deposit_output_index",
]  # fmt: skip
plausible = {
    "account_id": st.sampled_from(["alice", "bob", "alice\n", "operator:WEI:assets", ""]),
    "asset": st.sampled_from(["WEI", "ETH", "USDT", "xUSD", "NOPAY", "DOGE"]),
    "amount": st.sampled_from(["5", "0", "-1", "1e400", "0.5", "99999999999999999999", "١"]),
    "destination_address": st.sampled_from([ETH_ADDRESS, ETH_ADDRESS.lower()[:-1] + "X", ""]),
    "created_at": st.sampled_from(["2026-11-21T00:00:00Z", "1999-01-01", "x", "9999-12-31"]),
}
body = (
    st.fixed_dictionaries(
        {},
        optional={
            name: (plausible[name] | value) if name in plausible else value for name in FIELDS
        },
    )
    | value
)


def test_fuzzed_requests_never_answer_5xx_and_refused_ones_produce_nothing(settings, start_worker):
    worker = start_worker()
    accepted: set[str] = set()

    @examples(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["deposits", "withdrawals", "transfers"]), body)
    def one(kind: str, data) -> None:
        status, answer = post(worker, f"/api/v1/{kind}", raw=json.dumps(data).encode())
        assert status in (202, 400), (status, answer)
        if status == 202:
            accepted.add(answer["request_id"])
        else:
            assert answer["error"] and answer["message"] and answer.get("field"), answer

    one()
    assert worker.process.alive()
    produced = []
    for topic in REQUEST_TOPICS:
        produced += values(read_topic(settings, topic, timeout_s=3))
    assert {r["request_id"] for r in produced} == accepted


def test_fuzzed_bank_bodies_never_answer_5xx(settings, start_worker):
    worker = start_worker()

    @examples(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(
            ["/api/v1/bank/camt", "/api/v1/reconciliation/camt054", "/api/v1/reconciliation/eod"]
        ),
        value | st.fixed_dictionaries({"message_id": value, "account_id": st.just(USD_ACCOUNT)}),
    )
    def one(path: str, data) -> None:
        status, answer = post(worker, path, raw=json.dumps(data).encode())
        assert status < 500, (status, answer)
        assert answer.get("error"), answer

    one()
    assert worker.process.alive()
    assert call("GET", f"{worker.api_url}/api/v1/health")[0] == 200
