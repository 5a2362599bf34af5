"""`tokengine verify-ledger`: the hash chain and the balances, recomputed from scratch.

For every account's chain of ledger transactions (from Postgres, and from the
ledger-entries topic) it checks that sequences run 1, 2, 3... without a gap, that each
`previous_hash` is the hash before it, that each stored hash equals the recomputed
`topics.ledger_hash.transaction_hash`, and that each transaction is balanced. From
Postgres it also checks that every account's balance equals the sum of its postings.
It reports the first break of each account precisely (account, sequence, what differs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from core.accounts import user_account
from topics.ledger_hash import ZERO_HASH, transaction_hash


@dataclass
class Verification:
    source: str
    transactions: int = 0
    accounts: int = 0
    breaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        verdict = "OK" if self.ok else f"{len(self.breaks)} break(s)"
        return (
            f"{self.source}: {self.transactions} transactions, {self.accounts} accounts: {verdict}"
        )


def verify_chains(source: str, transactions: list[dict[str, Any]]) -> Verification:
    """`transactions`: LedgerTransaction values (postings included), any order."""
    result = Verification(source)
    by_account: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for transaction in transactions:
        chain = by_account[transaction["account_id"]]
        seen = chain.get(transaction["sequence"])
        if seen is not None and seen["hash"] != transaction["hash"]:
            result.breaks.append(
                f"account {transaction['account_id']} sequence {transaction['sequence']}: "
                f"two different transactions ({seen['transaction_id']}, "
                f"{transaction['transaction_id']})"
            )
        chain.setdefault(transaction["sequence"], transaction)
    result.accounts = len(by_account)
    for account, chain in sorted(by_account.items()):
        previous = ZERO_HASH
        for expected, sequence in enumerate(sorted(chain), start=1):
            transaction = chain[sequence]
            result.transactions += 1
            problem = chain_problem(transaction, expected, previous)
            if problem:
                result.breaks.append(f"account {account} sequence {sequence}: {problem}")
                break
            previous = transaction["hash"]
    return result


def chain_problem(transaction: dict[str, Any], expected: int, previous: str) -> str | None:
    if transaction["sequence"] != expected:
        return f"sequence gap: expected {expected}"
    if transaction["previous_hash"] != previous:
        return f"previous_hash {transaction['previous_hash'][:16]}... != {previous[:16]}..."
    computed = transaction_hash(previous, transaction)
    if computed != transaction["hash"]:
        return (
            f"transaction {transaction['transaction_id']}: stored hash "
            f"{transaction['hash'][:16]}... != recomputed {computed[:16]}... (content altered)"
        )
    debits = sum(p["amount"] for p in transaction["postings"] if p["direction"] == "DEBIT")
    credits = sum(p["amount"] for p in transaction["postings"] if p["direction"] == "CREDIT")
    if debits != credits:
        return f"transaction {transaction['transaction_id']}: debits {debits} != credits {credits}"
    return None


def transactions_from_postgres(conn: psycopg.Connection) -> list[dict[str, Any]]:
    postings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for transaction_id, account, direction, amount in conn.execute(
        "SELECT transaction_id, ledger_account, direction, amount FROM ledger_postings"
        " ORDER BY transaction_id, posting_index"
    ):
        postings[transaction_id].append(
            {"ledger_account": account, "direction": direction, "amount": amount}
        )
    columns = (
        "transaction_id",
        "account_id",
        "kind",
        "cause_id",
        "asset",
        "sequence",
        "previous_hash",
        "hash",
        "created_at",
    )
    found = []
    for row in conn.execute(f"SELECT {', '.join(columns)} FROM ledger_transactions"):
        transaction = dict(zip(columns, row, strict=True))
        transaction["postings"] = postings.get(transaction["transaction_id"], [])
        found.append(transaction)
    return found


def balance_breaks(conn: psycopg.Connection) -> list[str]:
    """Each account's stored balance against the sum of its postings."""
    nets: dict[str, Decimal] = defaultdict(Decimal)
    for account, direction, amount in conn.execute(
        "SELECT ledger_account, direction, amount FROM ledger_postings"
        " WHERE ledger_account LIKE 'user:%%'"
    ):
        nets[account] += amount if direction == "CREDIT" else -amount
    breaks = []
    for account_id, asset, balance in conn.execute(
        "SELECT account_id, asset, balance FROM accounts ORDER BY account_id, asset"
    ):
        summed = nets.get(user_account(account_id, asset), Decimal(0))
        if summed != balance:
            breaks.append(
                f"account {account_id} {asset}: balance {balance} != sum of postings {summed}"
            )
    return breaks


def verify_postgres(database_url: str) -> Verification:
    with psycopg.connect(database_url) as conn:
        result = verify_chains("postgres", transactions_from_postgres(conn))
        result.breaks += balance_breaks(conn)
    return result
