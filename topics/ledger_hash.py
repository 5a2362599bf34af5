"""The hash chain of ledger transactions: part of the LedgerTransaction contract.

Each account's transactions form a chain: hash = SHA-256(previous_hash + canonical content).
The ledger computes it, the sink stores it and `verify-ledger` recomputes it, all with
`transaction_hash` below, so the three can never disagree on the definition.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

ZERO_HASH = "0" * 64  # the previous hash of an account's first transaction
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def _amount(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def canonical_content(transaction: dict[str, Any]) -> str:
    postings = ";".join(
        f"{p['ledger_account']}|{p['direction']}|{_amount(p['amount'])}"
        for p in transaction["postings"]
    )
    created_ms = (transaction["created_at"] - EPOCH) // ONE_MS
    return "\n".join(
        (
            transaction["transaction_id"],
            transaction["account_id"],
            transaction["kind"],
            transaction["cause_id"],
            transaction["asset"],
            postings,
            str(transaction["sequence"]),
            str(created_ms),
        )
    )


def transaction_hash(previous_hash: str, transaction: dict[str, Any]) -> str:
    content = canonical_content(transaction)
    return hashlib.sha256((previous_hash + "\n" + content).encode()).hexdigest()
