"""Transfers: internal ones across partitions, cross-chain ones through a 1:1 conversion.

Owns what a TRANSFER_REQUEST does (INTERNAL: `user -> clearing` here, and a credit leg,
`transfer-credit:<sender>:<request id>`, for the receiver's partition; CROSS_CHAIN: it
waits for its deposit, then converts 1:1 through the liquidity accounts and pays out:
`streams.ledger.payouts`), and what a TRANSFER_CREDIT does (`clearing -> user`, once;
one it cannot book is refused with a CRITICAL alert: its debit waits in clearing).
Every refusal of a cross-chain transfer is decided before anything is converted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import ids
from core.accounts import clearing, operator_liquidity
from core.assets import Asset
from core.money import scale_unit
from core.observations import deposit_id
from core.reasons import Reason
from streams.ledger.awaiting import await_deposit
from streams.ledger.errors import Rejected
from streams.ledger.marks import find_mark, untimely
from streams.ledger.payouts import payout_refusal, prepare_payout
from streams.ledger.postings import beyond_range, refuse_beyond_range, transfer
from streams.ledger.results import decide
from streams.ledger.step import (
    Output,
    Step,
    asset_or_none,
    positive_amount_of,
    refuse_with_alert,
)
from topics import catalogue


def on_transfer_request(step: Step) -> None:
    request = step.command.payload
    request_id = request["request_id"]
    asset = asset_or_none(step.context, request["asset"])
    refused = Reason.UNKNOWN_ASSET if asset is None else untimely(step)
    if refused:
        decide(step, request_id, "transfer", "REJECTED", reason=refused)
        return
    amount = positive_amount_of(asset, request["amount"])
    if request["kind"] == "INTERNAL":
        internal_transfer(step, request, asset, amount)
        return
    key = deposit_id(asset, request["deposit_tx_hash"], request["deposit_output_index"])
    waiting = {
        "request_id": request_id,
        "request_kind": "transfer",
        "asset": asset.code,
        "amount": str(amount),
        "destination_asset": request["destination_asset"],
        "destination_address": request["destination_address"],
    }
    if find_mark(step, ids.deposit_command(key, "CONFIRMED", "")) is not None:
        continue_cross_chain(step, waiting)
        return
    if await_deposit(step, key, waiting):
        decide(step, request_id, "transfer", "ACCEPTED", asset=asset.code, amount=amount)


def internal_transfer(step: Step, request: dict[str, Any], asset: Asset, amount: Decimal) -> None:
    record = step.record
    if record.available(asset.code) < amount:
        decide(
            step,
            request["request_id"],
            "transfer",
            "REJECTED",
            reason=Reason.INSUFFICIENT_FUNDS,
            asset=asset.code,
            amount=amount,
        )
        return
    transfer(
        step,
        "transfer_out",
        asset.code,
        record.user_account(asset.code),
        clearing(asset.code),
        amount,
    )
    # the credit leg is a command of the receiving account, applied once on its partition
    credit = {
        "command_id": ids.transfer_credit(record.account_id, request["request_id"]),
        "kind": "TRANSFER_CREDIT",
        "account_id": request["to_account_id"],
        "payload": step.command.payload_bytes,
        "source_topic": catalogue.TRANSFER_CREDITS,
        "source_partition": -1,
        "source_offset": step.command.offset,
    }
    step.outputs.append(Output(catalogue.TRANSFER_CREDITS, request["to_account_id"], credit))
    decide(step, request["request_id"], "transfer", "COMPLETED", asset=asset.code, amount=amount)


def on_transfer_credit(step: Step) -> None:
    request = step.command.payload
    asset = asset_or_none(step.context, request["asset"])
    if asset is None:  # the debit leg is in clearing: an operator must act
        refuse_with_alert(
            step,
            Reason.UNKNOWN_ASSET,
            f"transfer credit of {request['asset']}: asset not configured",
        )
    try:
        amount = positive_amount_of(asset, request["amount"])
        refuse_beyond_range(step.record, asset, amount)
    except Rejected as rejection:  # the debit leg is in clearing: an operator must act
        refuse_with_alert(step, rejection.reason, f"transfer credit: {rejection}")
    transfer(
        step,
        "transfer_in",
        asset.code,
        clearing(asset.code),
        step.record.user_account(asset.code),
        amount,
    )


def continue_cross_chain(step: Step, waiting: dict[str, Any]) -> None:
    """The deposit is credited: convert 1:1 to the destination asset, then pay out.

    Every refusal is decided before the conversion is posted: a transfer is converted and
    paid, or left as it was (the deposit stays credited in the source asset)."""
    source = asset_or_none(step.context, waiting["asset"])
    destination = asset_or_none(step.context, waiting["destination_asset"])
    amount = Decimal(waiting["amount"])
    request_id = waiting["request_id"]
    if source is None or destination is None:
        decide(step, request_id, "transfer", "REJECTED", reason=Reason.UNKNOWN_ASSET)
        return
    fee = destination.withdrawal_fee(amount)
    refused = (
        payout_refusal(step, destination, funded_by=source)
        or (Reason.INSUFFICIENT_FUNDS if step.record.available(source.code) < amount else None)
        or (
            Reason.INVALID_AMOUNT
            if amount != amount.quantize(scale_unit(destination.decimals))
            else None
        )
        or (Reason.AMOUNT_BELOW_FEE if amount <= fee else None)
        or (Reason.AMOUNT_OUT_OF_RANGE if beyond_range(step.record, destination, amount) else None)
    )
    if refused:
        decide(
            step,
            request_id,
            "transfer",
            "REJECTED",
            reason=refused,
            asset=source.code,
            amount=amount,
        )
        return
    record = step.record
    transfer(
        step,
        "conversion_out",
        source.code,
        record.user_account(source.code),
        operator_liquidity(source.code),
        amount,
    )
    transfer(
        step,
        "conversion_in",
        destination.code,
        operator_liquidity(destination.code),
        record.user_account(destination.code),
        amount,
    )
    prepare_payout(
        step,
        request_id,
        "transfer",
        destination,
        amount - fee,
        fee,
        waiting["destination_address"],
        funded_by=source,
    )
