"""The intraday bank-balance client (tier 2): asks the bank's balance API for a figure.

Owns the HTTP call and turning its answer into a `BankBalance` value. The API is
`GET {TOKENGINE_BANK_API}/accounts/{account_id}/balance` answering JSON
`{"account_id", "currency", "balance": "<decimal string>", "as_of": "<ISO 8601>"}`;
`connectors.simulated_bank` serves the same shape for tests and the demo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

TIMEOUT_S = 10.0


class IntradayError(RuntimeError):
    pass


def fetch_balance(base_url: str, account_id: str) -> dict[str, Any]:
    """The bank's current balance of an account, as a BankBalance value."""
    url = f"{base_url.rstrip('/')}/accounts/{account_id}/balance"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
        body = response.json()
        balance = Decimal(str(body["balance"]))
    except (httpx.HTTPError, ValueError, KeyError, InvalidOperation) as error:
        raise IntradayError(f"{url}: {error}") from error
    as_of = body.get("as_of")
    when = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)
    return {
        "account_id": account_id,
        "currency": body.get("currency", ""),
        "balance": balance,
        "as_of": when if when.tzinfo else when.replace(tzinfo=UTC),
        "source": "intraday-api",
    }
