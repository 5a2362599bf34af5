"""What a chain observation may credit: one check for intake and the ledger.

A `ChainObservation` (from a chain watcher or the bank connector) names an asset, an
account and an amount; `deposit_id` is the one way its id is built (the watchers, the bank
connector and the ledger's deposit and transfer requests agree on it). It is creditable
only if the asset is configured on the observation's chain, the account id is valid, and
the amount is positive, exact at the asset's scale and at least the asset's `min_deposit`. Anything
else is refused with a reason naming the field: zero-value transfers (address-poisoning
spam) and dust below the minimum are recorded (dead letter) and never credited.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import fields
from core.assets import Asset, AssetCatalogue
from core.fields import FieldError
from core.money import AmountError, quantize_exact
from core.reasons import Reason


def deposit_id(asset: Asset, tx_hash: str, output_index: int) -> str:
    """`chain:tx_hash:index`; a bank reference is unique only at its bank, so a bank deposit
    is `bank:<bank account>:<reference>:0` (two banks may use one reference)."""
    if asset.chain == "bank":
        return f"bank:{asset.bank_account.lower()}:{tx_hash.lower()}:{output_index}"
    return f"{asset.chain}:{tx_hash.lower()}:{output_index}"


def observed_asset(observation: dict[str, Any], assets: AssetCatalogue) -> Asset:
    asset = assets.get(observation.get("asset"))
    if asset is None:
        raise FieldError(
            Reason.UNKNOWN_ASSET, "asset", f"unknown asset {observation.get('asset')!r}"
        )
    if asset.chain != observation.get("chain"):
        raise FieldError(
            Reason.INVALID_FIELD,
            "chain",
            f"{asset.code} is on {asset.chain}, not {observation['chain']}",
        )
    return asset


def deposit_amount(asset: Asset, value: object, field: str = "amount") -> Decimal:
    """A deposit's amount: exact at the asset's scale, positive, at least the minimum."""
    try:
        amount = quantize_exact(value, asset.decimals) if isinstance(value, Decimal) else None
    except AmountError as error:
        raise FieldError(Reason.INVALID_AMOUNT, field, str(error)) from None
    if amount is None:
        raise FieldError(Reason.INVALID_AMOUNT, field, "must be a decimal")
    if amount <= 0:
        raise FieldError(Reason.INVALID_AMOUNT, field, "must be positive (zero-value transfer)")
    if amount < asset.min_deposit:
        raise FieldError(
            Reason.AMOUNT_BELOW_MINIMUM, field, f"{amount} is below the minimum {asset.min_deposit}"
        )
    return amount


def creditable(
    observation: dict[str, Any], assets: AssetCatalogue, check_account: bool = True
) -> tuple[Asset, Decimal]:
    """The asset and amount a CONFIRMED observation credits, or a FieldError (the account
    id is checked unless the caller did: the ledger checks every command's)."""
    asset = observed_asset(observation, assets)
    if check_account:
        fields.holder_account_id(observation.get("account_id"))
    return asset, deposit_amount(asset, observation.get("amount"))
