"""The record's invariants, checked after every command (a broken one stops the worker).

Per record: user balances never negative, the record balanced per asset (it holds every
posting of its transactions, the operator's sides included), 0 <= reserved <= balance,
and the reservations equal the prepared payouts. A violation is the ledger's own defect,
never bad input: `LedgerInvariantError` (raised, not asserted).
"""

from __future__ import annotations

from decimal import Decimal

from core.accounts import ledger_asset
from streams.ledger.errors import LedgerInvariantError
from streams.ledger.postings import ZERO
from streams.ledger.records import AccountRecord


def check_invariants(record: AccountRecord) -> None:
    """Kept on in production: stopping beats continuing with a wrong balance."""
    user_prefix = record.user_account("")
    totals: dict[str, Decimal] = {}
    for ledger_account, net in record.ledger.items():
        asset = ledger_asset(ledger_account)
        totals[asset] = totals.get(asset, ZERO) + net
        if net > 0 and ledger_account.startswith(user_prefix):  # a user's balance is -net
            raise LedgerInvariantError(f"{record.account_id} {asset} balance {-net} < 0")
    if any(totals.values()):
        raise LedgerInvariantError(f"record unbalanced: {totals}")
    for asset, reserved in record.reserved.items():  # absent: nothing reserved
        balance = record.balance(asset)
        if not 0 <= reserved <= balance:
            raise LedgerInvariantError(f"{record.account_id} {asset} reserved {reserved}")
    held = {}
    for payout in record.payouts.values():
        if payout.state == "PREPARED":
            held[payout.asset] = held.get(payout.asset, ZERO) + payout.amount + payout.fee
    if held != {a: r for a, r in record.reserved.items() if r}:
        raise LedgerInvariantError("reservations != payouts")


def user_balances(record: AccountRecord) -> dict[str, dict[str, Decimal]]:
    return {
        asset: {
            "balance": record.balance(asset),
            "reserved": record.reserved_of(asset),
            "available": record.available(asset),
        }
        for asset in record.assets()
    }
