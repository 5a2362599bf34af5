"""Deposits: a confirmed chain observation credits its account once per deposit id.

Owns what a CHAIN_OBSERVATION does (a CONFIRMED one credits `operator assets -> user` once,
its mark kept for ever; a REMOVED one alerts if the deposit was credited: never credit
twice; a deposit of the suspense record is held in suspense: `streams.ledger.suspense`;
one of the treasury record, a transfer into a hot wallet, is the operator's capital)
and what a DEPOSIT_REQUEST does (COMPLETED at once if its deposit is credited,
else it waits: `streams.ledger.awaiting`). Zero, dust and foreign-chain deposits are
refused (`core.observations.creditable`).
"""

from __future__ import annotations

from decimal import Decimal

from core import ids
from core.accounts import operator_assets, operator_capital
from core.fields import SUSPENSE_ACCOUNT, TREASURY_ACCOUNT, FieldError
from core.observations import creditable, deposit_id
from core.reasons import Reason
from streams.ledger.awaiting import await_deposit
from streams.ledger.errors import Rejected
from streams.ledger.marks import find_mark, untimely
from streams.ledger.postings import refuse_beyond_range, transfer
from streams.ledger.records import Mark
from streams.ledger.results import CREDITED, decide
from streams.ledger.step import Step, alert, asset_or_none, positive_amount_of
from streams.ledger.suspense import credit_suspense
from streams.ledger.transfers import continue_cross_chain


def on_deposit_request(step: Step) -> None:
    request = step.command.payload
    asset = asset_or_none(step.context, request["asset"])
    refused = Reason.UNKNOWN_ASSET if asset is None else untimely(step)
    if refused:
        decide(step, request["request_id"], "deposit", "REJECTED", reason=refused)
        return
    amount = positive_amount_of(asset, request["amount"])
    key = deposit_id(asset, request["tx_hash"], request["output_index"])
    credited = find_mark(step, ids.deposit_command(key, "CONFIRMED", ""))
    if credited is not None:
        amount = credited_amount(credited)
        decide(step, request["request_id"], "deposit", "COMPLETED", asset=asset.code, amount=amount)
        return
    if not await_deposit(
        step,
        key,
        {"request_id": request["request_id"], "request_kind": "deposit", "asset": asset.code},
    ):
        return
    decide(step, request["request_id"], "deposit", "ACCEPTED", asset=asset.code, amount=amount)


def credited_amount(mark: Mark) -> Decimal | None:
    """What a deposit's mark says it credited."""
    value = (mark.result or {}).get(CREDITED)
    return None if value is None else Decimal(value)


def on_chain_observation(step: Step) -> None:
    observation = step.command.payload
    key = observation["deposit_id"]
    if observation["status"] == "REMOVED":
        on_deposit_removed(step, key)
        return
    try:  # the check intake made: zero, dust and foreign assets are never credited
        asset, amount = creditable(observation, step.context.assets, check_account=False)
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    refuse_beyond_range(step.record, asset, amount)
    record = step.record
    if record.account_id == SUSPENSE_ACCOUNT:
        kept = credit_suspense(step, asset, amount, key)
    elif record.account_id == TREASURY_ACCOUNT:  # the operator funded a hot wallet
        transfer(step, "wallet_funding", asset.code, operator_assets(asset.code),
                 operator_capital(asset.code), amount)  # fmt: skip
        kept = {CREDITED: str(amount)}
    else:
        transfer(step, "deposit", asset.code, operator_assets(asset.code),
                 record.user_account(asset.code), amount)  # fmt: skip
        kept = {CREDITED: str(amount)}
    mark_id = step.command.command_id
    mark = record.credited[mark_id]
    record.credited[mark_id] = Mark(mark.fingerprint, mark.at_ms, kept)
    waiting = record.awaiting.get(key)
    if waiting is None or waiting.get("asset", asset.code) != asset.code:
        return  # nothing waits for it, or a request for another asset's deposit
    del record.awaiting[key]
    if waiting["request_kind"] == "deposit":
        decide(step, waiting["request_id"], "deposit", "COMPLETED", asset=asset.code, amount=amount)
    else:
        continue_cross_chain(step, waiting)


def on_deposit_removed(step: Step, key: str) -> None:
    """A reorg took the deposit's block away: alert if it was credited, never credit twice."""
    if find_mark(step, ids.deposit_command(key, "CONFIRMED", "")) is not None:
        alert(
            step,
            "deposit.reorged_after_credit",
            "CRITICAL",
            f"deposit {key} was credited and its block left the chain",
            deposit_id=key,
        )
