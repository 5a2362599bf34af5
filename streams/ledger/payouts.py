"""Withdrawals and payouts: check, reserve, prepare, then commit or roll back once.

Owns what a WITHDRAWAL_REQUEST does (refused, or amount + fee reserved and a payout
prepared, its command emitted unless the breaker holds it), what a PAYOUT_RESULT does
(CONFIRMED: the withdrawal and its fee posted, the chain's fee paid by the operator, in
the coin it was paid in: an ERC20 payout's gas from the ETH fee account; FAILED: the
reservation released, a failure fee charged; exactly one of them, once), and
releasing held payouts when the breaker closes. The breaker's rules are `core.breaker`'s.
"""

from __future__ import annotations

from decimal import Decimal

from core import breaker, ids
from core.accounts import operator_assets, operator_fees
from core.assets import Asset
from core.reasons import Reason
from streams.ledger.commands import Command, from_ms
from streams.ledger.errors import Rejected
from streams.ledger.marks import find_final_payout, record_full, untimely
from streams.ledger.postings import ZERO, pay_network_fee, release, reserve, transfer
from streams.ledger.records import AccountRecord, Payout
from streams.ledger.results import decide
from streams.ledger.step import (
    Context,
    Output,
    Step,
    alert,
    amount_of,
    asset_or_none,
    positive_amount_of,
    refuse_with_alert,
)
from topics import catalogue

MAX_PAYOUTS_IN_FLIGHT = 1000


def on_withdrawal_request(step: Step) -> None:
    request = step.command.payload
    asset = asset_or_none(step.context, request["asset"])
    request_id = request["request_id"]
    refused = (
        Reason.UNKNOWN_ASSET
        if asset is None
        else Reason.PAYOUTS_DISABLED
        if not asset.payouts_enabled
        else Reason.PAYOUTS_UNAVAILABLE
        if asset.payouts_unavailable
        else untimely(step)
    )
    if refused:
        decide(step, request_id, "withdrawal", "REJECTED", reason=refused)
        return
    amount = positive_amount_of(asset, request["amount"])
    prepare_payout(
        step,
        request_id,
        "withdrawal",
        asset,
        amount,
        asset.withdrawal_fee(amount),
        request["destination_address"],
    )


def prepare_payout(
    step: Step,
    request_id: str,
    request_kind: str,
    asset: Asset,
    amount: Decimal,
    fee: Decimal,
    destination: str,
    funded_by: Asset | None = None,
) -> bool:
    """Check, reserve amount + fee, record the payout, emit its command (unless held).

    `funded_by`: the asset converted into this payout (a cross-chain transfer), whose
    suspension or open breaker stops the payout as the paid asset's own does.
    """
    guarded = [asset] if funded_by is None else [funded_by, asset]
    blocked = payout_refusal(step, asset, funded_by)
    if blocked:
        decide(
            step,
            request_id,
            request_kind,
            "REJECTED",
            reason=blocked,
            asset=asset.code,
            amount=amount,
        )
        return False
    if step.record.available(asset.code) < amount + fee:
        decide(
            step,
            request_id,
            request_kind,
            "REJECTED",
            reason=Reason.INSUFFICIENT_FUNDS,
            asset=asset.code,
            amount=amount,
            fee=fee,
        )
        return False
    payout = Payout(
        payout_id=ids.payout(step.record.account_id, request_id),
        request_id=request_id,
        request_kind=request_kind,
        asset=asset.code,
        amount=amount,
        fee=fee,
        destination_address=destination,
        state="PREPARED",
        created_ms=step.command.time_ms,
        held=any(breaker_open(step.context, a.code) for a in guarded),
    )
    reserve(step, asset.code, amount + fee)
    step.record.payouts[payout.payout_id] = payout
    decide(
        step,
        request_id,
        request_kind,
        "ACCEPTED",
        asset=asset.code,
        amount=amount,
        fee=fee,
        reason=Reason.HELD_BY_CIRCUIT_BREAKER if payout.held else None,
    )
    if not payout.held:
        emit_payout_command(step, payout, asset)
    return True


def payout_refusal(step: Step, asset: Asset, funded_by: Asset | None = None) -> str | None:
    """Why no new payout of `asset` (converted from `funded_by`) may be prepared now."""
    if not asset.payouts_enabled:
        return Reason.PAYOUTS_DISABLED
    if asset.payouts_unavailable:
        return Reason.PAYOUTS_UNAVAILABLE
    for guarded in (asset,) if funded_by is None else (funded_by, asset):
        blocked = payouts_blocked_reason(step.context, guarded)
        if blocked:
            return blocked
    if payouts_in_flight(step.record) >= MAX_PAYOUTS_IN_FLIGHT or record_full(step.record):
        return Reason.TOO_MANY_PENDING_REQUESTS
    return None


def payouts_blocked_reason(context: Context, asset: Asset) -> str | None:
    """Significant level: new payouts of the asset are refused."""
    return Reason.PAYOUTS_SUSPENDED if breaker.suspended(context.breaker, asset.code) else None


def breaker_open(context: Context, asset_code: str) -> bool:
    """Critical level: nothing is submitted to any chain until an operator resets."""
    return breaker.halted(context.breaker, asset_code)


def payouts_in_flight(record: AccountRecord) -> int:
    """Prepared payouts (counted only when the record holds many: final ones are paged)."""
    if len(record.payouts) < MAX_PAYOUTS_IN_FLIGHT:
        return len(record.payouts)
    return sum(1 for payout in record.payouts.values() if payout.state == "PREPARED")


def emit_payout_command(step: Step, payout: Payout, asset: Asset) -> None:
    step.outputs.append(
        Output(
            catalogue.PAYOUT_COMMANDS,
            step.record.account_id,
            {
                "payout_id": payout.payout_id,
                "account_id": step.record.account_id,
                "request_id": payout.request_id,
                "chain": asset.chain,
                "asset": asset.code,
                "amount": payout.amount,
                "fee": payout.fee,
                "destination_address": payout.destination_address,
                "created_at": from_ms(payout.created_ms),
            },
        )
    )


def on_payout_result(step: Step) -> None:
    result = step.command.payload
    record = step.record
    payout = record.payouts.get(result["payout_id"]) or find_final_payout(step, result["payout_id"])
    if payout is None:
        raise Rejected(
            Reason.UNKNOWN_PAYOUT, f"payout_id: no prepared payout {result['payout_id']}"
        )
    if payout.state != "PREPARED":
        alert(
            step,
            "payout.conflicting_result",
            "CRITICAL",
            f"payout {payout.payout_id} is {payout.state}; {result['status']} ignored",
            payout_id=payout.payout_id,
        )
        raise Rejected(
            Reason.CONFLICTING_PAYOUT_RESULT,
            f"payout {payout.payout_id} is already {payout.state}",
            alerts=step.outputs,
        )
    asset = asset_or_none(step.context, payout.asset)
    if asset is None:
        refuse_with_alert(
            step,
            Reason.UNKNOWN_ASSET,
            f"payout {payout.payout_id}: asset {payout.asset} not configured",
        )
    fee_asset = network_fee_asset(step, payout, asset, result.get("network_fee_asset"))
    fee = result["network_fee"]
    try:
        network_fee = amount_of(fee_asset, fee, "network_fee") if fee else ZERO
    except Rejected as rejection:
        refuse_with_alert(step, rejection.reason, f"payout {payout.payout_id}: {rejection}")
    release(step, asset.code, payout.amount + payout.fee)
    if result["status"] == "CONFIRMED":
        commit_payout(step, payout, asset, (fee_asset, network_fee))
    else:
        reason = payout_failure(result["reason"])
        roll_back_payout(step, payout, asset, (fee_asset, network_fee), reason)


def network_fee_asset(step: Step, payout: Payout, asset: Asset, code: str | None) -> Asset:
    """The asset a result's network fee is in: the payout's, or its chain's native coin."""
    if code is None or code == asset.code:
        return asset
    native = step.context.assets.native(asset.chain)
    if native is None or native.code != code:
        refuse_with_alert(
            step,
            Reason.UNKNOWN_ASSET,
            f"payout {payout.payout_id}: network_fee_asset {code!r} is not the native coin "
            f"of {asset.chain}",
        )
    return native


def payout_failure(reason: str | None) -> Reason:
    """A FAILED result's reason as the request's: a `Reason`, else `payout_failed`."""
    try:
        return Reason(reason)
    except ValueError:
        return Reason.PAYOUT_FAILED


def commit_payout(
    step: Step, payout: Payout, asset: Asset, network_fee: tuple[Asset, Decimal]
) -> None:
    user = step.record.user_account(asset.code)
    transfer(step, "withdrawal", asset.code, user, operator_assets(asset.code), payout.amount)
    if payout.fee:
        transfer(step, "withdrawal_fee", asset.code, user, operator_fees(asset.code), payout.fee)
    pay_network_fee(step, network_fee)
    step.record.payouts[payout.payout_id] = payout._replace(state="CONFIRMED")
    decide(
        step,
        payout.request_id,
        payout.request_kind,
        "COMPLETED",
        asset=asset.code,
        amount=payout.amount,
        fee=payout.fee,
    )


def roll_back_payout(
    step: Step, payout: Payout, asset: Asset, network_fee: tuple[Asset, Decimal], reason: str
) -> None:
    failure_fee = min(asset.failure_fee, payout.amount + payout.fee)
    if failure_fee:
        transfer(
            step,
            "failure_fee",
            asset.code,
            step.record.user_account(asset.code),
            operator_fees(asset.code),
            failure_fee,
        )
    pay_network_fee(step, network_fee)
    step.record.payouts[payout.payout_id] = payout._replace(state="FAILED")
    decide(
        step,
        payout.request_id,
        payout.request_kind,
        "FAILED",
        reason=reason,
        asset=asset.code,
        amount=payout.amount,
        fee=failure_fee,
    )


def on_breaker_change(step: Step) -> None:
    """Control records only: remember the newest breaker state per scope."""
    state = step.command.payload
    current = step.record.breaker.get(state["scope"])
    if current is None or step.command.source_offset > current[1]:
        step.record.breaker[state["scope"]] = [state["state"], step.command.source_offset]


def release_held_payouts(record: AccountRecord, command: Command, context: Context) -> list[Output]:
    """After a reset, emit the commands of this record's held payouts that may now go."""
    step = Step(record, command, context)
    for payout in list(record.payouts.values()):
        if payout.held and payout.state == "PREPARED" and not breaker_open(context, payout.asset):
            asset = asset_or_none(context, payout.asset)
            if asset is None:  # its asset left the configuration: it stays held
                continue
            record.payouts[payout.payout_id] = payout._replace(held=False)
            emit_payout_command(step, payout, asset)
    return step.outputs
