"""Request events: building them from client JSON and validating them.

One module owns what a valid deposit, withdrawal or transfer request is, so the CLI,
the HTTP API and the intake stage agree (the fields' grammars: `core.fields`,
`core.money`, `core.addresses`). A problem is a `RequestError` with a
machine-readable reason and the field it concerns; nothing is produced for it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core import fields
from core.addresses import address_problem
from core.assets import Asset, AssetCatalogue
from core.fields import TX_HASH, FieldError
from core.money import AmountError, parse_amount, quantize_exact, scale_unit
from core.reasons import Reason

KINDS = ("deposit", "withdrawal", "transfer")
MAX_CLOCK_AHEAD = timedelta(minutes=5)
RequestError = FieldError  # a refused request: reason, field, message


def _asset(data: dict[str, Any], field: str, assets: AssetCatalogue) -> Asset:
    code = fields.text(data, field, fields.ASSET_CODE)
    asset = assets.get(code)
    if asset is None:
        raise RequestError(Reason.UNKNOWN_ASSET, field, f"unknown asset {code!r}")
    return asset


def amount_field(data: dict[str, Any], field: str, asset: Asset, minimum: Decimal) -> Decimal:
    """A positive amount of `asset`, exact at its scale, at least `minimum`."""
    if field not in data:
        raise RequestError(Reason.MISSING_FIELD, field, "is required (a decimal string)")
    try:
        amount = quantize_exact(parse_amount(data[field]), asset.decimals)
    except AmountError as error:
        raise RequestError(Reason.INVALID_AMOUNT, field, str(error)) from None
    if amount <= 0:
        raise RequestError(Reason.INVALID_AMOUNT, field, "must be positive")
    if amount < minimum:
        raise RequestError(
            Reason.AMOUNT_BELOW_MINIMUM, field, f"must be at least {minimum} {asset.code}"
        )
    return amount


def _created_at(data: dict[str, Any]) -> datetime:
    value = data.get("created_at")
    now = datetime.now(UTC)
    if value is None:
        return now
    created = fields.timestamp(value, "created_at")
    if created > now + MAX_CLOCK_AHEAD:  # the ledger refuses it too, by its own time
        raise RequestError(
            Reason.INVALID_FIELD, "created_at", "is more than 5 minutes in the future"
        )
    return created


def _common(data: dict[str, Any], new_id: bool) -> dict[str, Any]:
    request_id = data.get("request_id")
    return {
        "request_id": f"req-{uuid.uuid4()}"
        if new_id and request_id in (None, "")
        else fields.request_id(request_id),
        "account_id": fields.account_id(data.get("account_id")),
        "created_at": _created_at(data),
    }


def _accepting_deposits(asset: Asset, field: str) -> Asset:
    if not asset.deposits_enabled:
        raise RequestError(
            Reason.DEPOSITS_DISABLED, field, f"{asset.code} does not accept deposits"
        )
    if asset.deposits_unavailable:
        raise RequestError(Reason.DEPOSITS_UNAVAILABLE, field, asset.deposits_unavailable)
    return asset


def deposit_request(data: dict[str, Any], assets: AssetCatalogue, new_id: bool) -> dict:
    record = _common(data, new_id)
    asset = _accepting_deposits(_asset(data, "asset", assets), "asset")
    record.update(
        asset=asset.code,
        amount=amount_field(data, "amount", asset, asset.min_deposit),
        chain=asset.chain,
        tx_hash=fields.text(data, "tx_hash", TX_HASH),
        output_index=fields.count(data, "output_index"),
    )
    return record


def payout_asset(data: dict[str, Any], field: str, assets: AssetCatalogue) -> Asset:
    asset = _asset(data, field, assets)
    if not asset.payouts_enabled:
        raise RequestError(Reason.PAYOUTS_DISABLED, field, f"{asset.code} does not allow payouts")
    if asset.payouts_unavailable:
        raise RequestError(Reason.PAYOUTS_UNAVAILABLE, field, asset.payouts_unavailable)
    return asset


def _destination(data: dict[str, Any], field: str, asset: Asset) -> str:
    address = fields.text(data, field)
    problem = address_problem(asset, address)
    if problem:
        raise RequestError(
            Reason.INVALID_ADDRESS, field, f"{problem} ({asset.code} on {asset.chain})"
        )
    return address


def withdrawal_request(data: dict[str, Any], assets: AssetCatalogue, new_id: bool) -> dict:
    record = _common(data, new_id)
    asset = payout_asset(data, "asset", assets)
    record.update(
        asset=asset.code,
        amount=amount_field(data, "amount", asset, asset.min_withdrawal),
        destination_address=_destination(data, "destination_address", asset),
    )
    return record


def transfer_request(data: dict[str, Any], assets: AssetCatalogue, new_id: bool) -> dict:
    record = _common(data, new_id)
    kind = data.get("kind", "INTERNAL" if "to_account_id" in data else "CROSS_CHAIN")
    if kind not in ("INTERNAL", "CROSS_CHAIN"):
        raise RequestError(Reason.INVALID_FIELD, "kind", "must be INTERNAL or CROSS_CHAIN")
    asset = _asset(data, "asset", assets)
    blank = dict.fromkeys(
        (
            "to_account_id",
            "destination_asset",
            "destination_address",
            "deposit_tx_hash",
            "deposit_output_index",
        )
    )
    record.update(blank, kind=kind, asset=asset.code)
    if kind == "INTERNAL":
        record["amount"] = amount_field(data, "amount", asset, scale_unit(asset.decimals))
        record["to_account_id"] = fields.account_id(data.get("to_account_id"), "to_account_id")
        if record["to_account_id"] == record["account_id"]:
            raise RequestError(Reason.INVALID_FIELD, "to_account_id", "must differ from account_id")
        return record
    _accepting_deposits(asset, "asset")
    destination = payout_asset(data, "destination_asset", assets)
    if destination.chain == asset.chain:
        raise RequestError(Reason.INVALID_FIELD, "destination_asset", "must be on another chain")
    if destination.unit != asset.unit:
        raise RequestError(
            Reason.INVALID_FIELD, "destination_asset", f"must be a {asset.unit} asset"
        )
    minimum = max(asset.min_deposit, destination.min_withdrawal)
    amount = amount_field(data, "amount", asset, minimum)
    try:
        quantize_exact(amount, destination.decimals)
    except AmountError as error:
        raise RequestError(Reason.INVALID_AMOUNT, "amount", str(error)) from None
    if amount <= destination.withdrawal_fee(amount):
        raise RequestError(
            Reason.AMOUNT_BELOW_FEE, "amount", f"must exceed the {destination.code} fee"
        )
    record.update(
        amount=amount,
        destination_asset=destination.code,
        destination_address=_destination(data, "destination_address", destination),
        deposit_tx_hash=fields.text(data, "deposit_tx_hash", TX_HASH),
        deposit_output_index=fields.count(data, "deposit_output_index"),
    )
    return record


BUILDERS = {
    "deposit": deposit_request,
    "withdrawal": withdrawal_request,
    "transfer": transfer_request,
}


def build_request(
    kind: str, data: object, assets: AssetCatalogue, new_id: bool = True
) -> dict[str, Any]:
    """A validated request record of `kind` from client JSON, ready to encode (a request
    without a `request_id` gets a new one, when `new_id`)."""
    if kind not in BUILDERS:
        raise RequestError(Reason.UNKNOWN_KIND, "kind", f"must be one of {', '.join(KINDS)}")
    if not isinstance(data, dict):
        raise RequestError(Reason.INVALID_JSON, "json", "must be a JSON object")
    return BUILDERS[kind](data, assets, new_id)


def revalidate(kind: str, record: dict[str, Any], assets: AssetCatalogue) -> dict[str, Any]:
    """Validate a decoded request event (from any producer) with the same rules; its
    `request_id` is its own (never made up here)."""
    return build_request(kind, dict(record), assets, new_id=False)
