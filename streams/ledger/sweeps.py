"""Sweeps in the ledger: the network fee of moving value between the operator's wallets.

Owns what a SWEEP_RESULT does. A sweep moves value from a deposit address to the hot or
the cold wallet: all three are the operator's, so the value stays in `operator:<asset>:
assets` and only the network fee the transaction paid leaves it, posted once from the fee
account of the coin it was paid in (`sweep_network_fee`), whether the sweep was mined
(CONFIRMED) or mined and reverted (FAILED with a fee). The command belongs to the
treasury record (the operator's own postings: `check_command` holds it there) and its
mark is kept for ever (`ids.SWEEP_PREFIX`): a sweep's fee is posted once, and a second,
different result of one sweep is refused.
"""

from __future__ import annotations

from core.reasons import Reason
from streams.ledger.errors import Rejected
from streams.ledger.postings import ZERO, pay_network_fee
from streams.ledger.step import Step, amount_of, asset_or_none, refuse_with_alert


def on_sweep_result(step: Step) -> None:
    result = step.command.payload
    sweep = result["sweep_id"]
    asset = asset_or_none(step.context, result["asset"])
    native = None if asset is None else step.context.assets.native(asset.chain)
    if native is None or native.code != result["network_fee_asset"]:
        refuse_with_alert(
            step,
            Reason.UNKNOWN_ASSET,
            f"sweep {sweep}: {result['asset']} with its fee in {result['network_fee_asset']}: "
            "not a configured asset and its chain's native coin",
        )
    fee_asset = native
    fee = result["network_fee"]
    try:
        network_fee = amount_of(fee_asset, fee, "network_fee") if fee else ZERO
    except Rejected as rejection:
        refuse_with_alert(step, rejection.reason, f"sweep {sweep}: {rejection}")
    pay_network_fee(step, (fee_asset, network_fee), "sweep_network_fee")
