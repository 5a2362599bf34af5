"""The intraday bank-balance client (tier 2): asks the bank's balance API for a figure.

Owns the HTTP call and turning its answer into a `BankBalance` value. The API is
`GET {TOKENGINE_BANK_API}/accounts/{account_id}/balance` answering JSON
`{"account_id", "currency", "balance": "<decimal string>", "as_of": "<ISO 8601>"}`;
`standins.simulated_bank` serves the same shape for tests and the demo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from core import fields
from core.fields import FieldError, load_json
from core.money import AmountError, parse_amount
from core.reasons import Reason

TIMEOUT_S = 10.0


class IntradayError(RuntimeError):
    pass


def fetch_balance(base_url: str, account_id: str) -> dict[str, Any]:
    """The bank's current balance of an account, as a BankBalance value; an answer that
    is not one (unreachable, malformed, an amount or time out of range) is an
    IntradayError, never a balance."""
    url = f"{base_url.rstrip('/')}/accounts/{account_id}/balance"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
        body = load_json(response.content, decimals=True)
        if not isinstance(body, dict):
            raise FieldError(Reason.INVALID_JSON, "json", "the answer is not a JSON object")
        balance = parse_amount(body.get("balance"), signed=True)
        as_of = body.get("as_of")
        when = fields.timestamp(as_of, "as_of") if as_of else datetime.now(UTC)
        currency = body.get("currency", "")
        if not isinstance(currency, str):
            raise FieldError(Reason.INVALID_FIELD, "currency", "must be a string")
    except (httpx.HTTPError, FieldError, AmountError) as error:
        raise IntradayError(f"{url}: {error}") from error
    return {
        "account_id": account_id,
        "currency": currency,
        "balance": balance,
        "as_of": when,
        "source": "intraday-api",
    }
