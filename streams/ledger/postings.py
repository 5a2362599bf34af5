"""Double entry: balanced transactions, reservations and the balance updates they cause.

Owns `post` (one balanced transaction: recorded in the account's record, emitted with its
hash-chain link, `topics.ledger_hash`), reserving and releasing amounts held for payouts,
the range a credit may take a balance to, and the balance updates a command emits for
every asset whose balance or reservation it changed (postings between operator accounts
alone, a network fee, a deposit held in suspense or a hot wallet's funding, change none).
A posting of a non-positive amount or an unbalanced transaction is the ledger's own defect
(handlers refuse such input first): `LedgerInvariantError`.
"""

from __future__ import annotations

from decimal import Decimal

from core.accounts import operator_assets, operator_fees
from core.assets import Asset
from core.money import MAX_AMOUNT
from core.reasons import Reason
from streams.ledger.errors import LedgerInvariantError, Rejected
from streams.ledger.records import AccountRecord
from streams.ledger.step import Output, Step
from topics import catalogue
from topics.ledger_hash import transaction_hash

ZERO = Decimal(0)


def post(step: Step, kind: str, asset: str, legs: list[tuple[str, str, Decimal]]) -> None:
    """Record one balanced transaction in the record and emit it with its chain hash."""
    debits_minus_credits = ZERO
    for _, direction, amount in legs:
        if amount <= 0:  # handlers refuse such input before they post
            raise LedgerInvariantError(f"a posting of {amount}: {legs}")
        debits_minus_credits += amount if direction == "DEBIT" else -amount
    if debits_minus_credits != 0:
        raise LedgerInvariantError(f"unbalanced transaction: {legs}")
    record = step.record
    for ledger_account, direction, amount in legs:
        delta = amount if direction == "DEBIT" else -amount
        record.ledger[ledger_account] = record.ledger.get(ledger_account, ZERO) + delta
    transaction = {
        "transaction_id": f"{step.command.command_id}:{kind}",
        "account_id": record.account_id,
        "kind": kind,
        "cause_id": step.command.command_id,
        "asset": asset,
        "postings": [{"ledger_account": a, "direction": d, "amount": m} for a, d, m in legs],
        "sequence": record.chain_sequence + 1,
        "previous_hash": record.chain_hash,
        "created_at": step.when,
    }
    transaction["hash"] = transaction_hash(record.chain_hash, transaction)
    record.chain_sequence = transaction["sequence"]
    record.chain_hash = transaction["hash"]
    if any(account == record.user_account(asset) for account, _, _ in legs):
        step.touched_assets.add(asset)  # the record's balance moved: an update is due
    step.outputs.append(Output(catalogue.LEDGER_ENTRIES, record.account_id, transaction))


def transfer(step: Step, kind: str, asset: str, debit: str, credit: str, amount: Decimal) -> None:
    post(step, kind, asset, [(debit, "DEBIT", amount), (credit, "CREDIT", amount)])


def pay_network_fee(
    step: Step, network_fee: tuple[Asset, Decimal], kind: str = "network_fee_correction"
) -> None:
    """A chain's actual fee is the operator's cost, paid from the fee account of the coin
    it was paid in (it left the operator's wallets: operator assets fall by it)."""
    asset, amount = network_fee
    if amount:
        transfer(step, kind, asset.code, operator_fees(asset.code), operator_assets(asset.code),
                 amount)  # fmt: skip


def reserve(step: Step, asset: str, amount: Decimal) -> None:
    record = step.record
    record.reserved[asset] = record.reserved_of(asset) + amount
    step.touched_assets.add(asset)


def release(step: Step, asset: str, amount: Decimal) -> None:
    record = step.record
    remaining = record.reserved_of(asset) - amount
    if remaining < 0:
        raise LedgerInvariantError(f"release of {amount} {asset} exceeds the reservation")
    if remaining:
        record.reserved[asset] = remaining
    else:
        record.reserved.pop(asset, None)
    step.touched_assets.add(asset)


def beyond_range(record: AccountRecord, asset: Asset, credit: Decimal) -> bool:
    """Whether crediting `credit` would take the balance past what the wire carries."""
    return record.balance(asset.code) + credit >= MAX_AMOUNT


def refuse_beyond_range(record: AccountRecord, asset: Asset, credit: Decimal) -> None:
    if beyond_range(record, asset, credit):
        raise Rejected(Reason.AMOUNT_OUT_OF_RANGE, f"amount: a balance of {asset.code} past 10^20")


def emit_balance_updates(step: Step) -> None:
    record = step.record
    for asset in sorted(step.touched_assets):
        balance, reserved = record.balance(asset), record.reserved_of(asset)
        step.outputs.append(
            Output(
                catalogue.BALANCE_UPDATES,
                record.account_id,
                {
                    "account_id": record.account_id,
                    "asset": asset,
                    "balance": balance,
                    "reserved": reserved,
                    "available": balance - reserved,
                    "version": record.version,
                    "cause_id": step.command.command_id,
                    "updated_at": step.when,
                },
            )
        )
