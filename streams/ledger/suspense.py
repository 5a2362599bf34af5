"""Suspense: deposits no binding attributes, held until an operator assigns them.

Owns what the engine's suspense record does with a deposit whose address nobody was bound
to at its block's time (a pool address never handed out, a binding expired: credited
`operator assets -> operator suspense`, with a `deposit.in_suspense` alert), what a
DEPOSIT_ASSIGNMENT does there (the deposit is found by its credit mark, asset and amount
as credited; `suspense -> clearing` once, and a credit leg for the user's partition), and
what that ASSIGNMENT_CREDIT does (`clearing -> user`, once). A deposit is never lost (it
sits in suspense) and never credited to a guess; an assignment that names a deposit not
in suspense, or another asset or amount, is refused (a dead letter), and a second
assignment of one deposit is a conflicting duplicate.
"""

from __future__ import annotations

from decimal import Decimal

from core import ids
from core.accounts import clearing, operator_assets, operator_suspense
from core.assets import Asset
from core.fields import SUSPENSE_ACCOUNT
from core.reasons import Reason
from streams.ledger.errors import Rejected
from streams.ledger.marks import find_mark
from streams.ledger.postings import refuse_beyond_range, transfer
from streams.ledger.results import CREDITED
from streams.ledger.step import Output, Step, alert, asset_or_none, refuse_with_alert
from topics import catalogue

ASSET = "asset"  # beside CREDITED in a suspense credit's mark: what it holds


def credit_suspense(step: Step, asset: Asset, amount: Decimal, deposit_id: str) -> dict:
    """A deposit nobody is bound for: held in suspense; returns what its mark keeps."""
    transfer(step, "deposit_suspense", asset.code, operator_assets(asset.code),
             operator_suspense(asset.code), amount)  # fmt: skip
    observation = step.command.payload
    alert(
        step,
        "deposit.in_suspense",
        "HIGH",
        f"deposit {deposit_id} of {amount} {asset.code} to {observation['to_address']}: "
        "no account was bound to the address at its block; an operator must assign it",
        deposit_id=deposit_id,
        address=observation["to_address"],
    )
    return {CREDITED: str(amount), ASSET: asset.code}


def on_deposit_assignment(step: Step) -> None:
    assignment = step.command.payload
    deposit_id, asset_code = assignment["deposit_id"], assignment["asset"]
    if step.record.account_id != SUSPENSE_ACCOUNT:
        raise Rejected(Reason.WRONG_PARTITION, "account_id: an assignment is the suspense's")
    asset = asset_or_none(step.context, asset_code)
    if asset is None:
        raise Rejected(Reason.UNKNOWN_ASSET, f"asset: {asset_code!r} is not configured")
    mark = find_mark(step, ids.deposit_command(deposit_id, "CONFIRMED", ""))
    held = (mark.result or {}) if mark is not None else {}
    if ASSET not in held:
        raise Rejected(Reason.NOT_FOUND, f"deposit_id: {deposit_id} is not held in suspense")
    amount = Decimal(held[CREDITED])
    if held[ASSET] != asset.code or assignment["amount"] != amount:
        message = f"asset, amount: {deposit_id} is held as {amount} {held[ASSET]}"
        raise Rejected(Reason.INVALID_AMOUNT, message)
    transfer(step, "suspense_assigned", asset.code, operator_suspense(asset.code),
             clearing(asset.code), amount)  # fmt: skip
    credit = {
        "command_id": ids.assignment_credit(deposit_id),
        "kind": "ASSIGNMENT_CREDIT",
        "account_id": assignment["account_id"],
        "payload": step.command.payload_bytes,
        "source_topic": catalogue.TRANSFER_CREDITS,
        "source_partition": -1,
        "source_offset": step.command.offset,
    }
    step.outputs.append(Output(catalogue.TRANSFER_CREDITS, assignment["account_id"], credit))


def on_assignment_credit(step: Step) -> None:
    assignment = step.command.payload
    asset = asset_or_none(step.context, assignment["asset"])
    if asset is None:  # the debit is in clearing: an operator must act
        refuse_with_alert(step, Reason.UNKNOWN_ASSET, f"assignment of {assignment['asset']}: "
                          "asset not configured")  # fmt: skip
    amount = Decimal(assignment["amount"])
    try:
        refuse_beyond_range(step.record, asset, amount)
    except Rejected as rejection:
        refuse_with_alert(step, rejection.reason, f"assignment credit: {rejection}")
    transfer(step, "deposit_assigned", asset.code, clearing(asset.code),
             step.record.user_account(asset.code), amount)  # fmt: skip
