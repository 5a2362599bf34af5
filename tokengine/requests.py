"""Request events: building them from client JSON and validating them.

One module owns what a valid deposit, withdrawal or transfer request is, so the CLI,
the HTTP API and the intake stage agree. A problem is a `RequestError` with a
machine-readable reason and the field it concerns; nothing is produced for it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tokengine.assets import Asset, AssetCatalogue
from tokengine.money import AmountError, parse_amount, quantize_exact

KINDS = ("deposit", "withdrawal", "transfer")
ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
TX_HASH_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
IBAN_PATTERN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")


class RequestError(ValueError):
    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field


def _text(data: dict[str, Any], field: str, pattern: re.Pattern[str] | None = None) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise RequestError("missing_field", field, "is required (a non-empty string)")
    if pattern is not None and not pattern.match(value):
        raise RequestError("invalid_field", field, f"has an invalid format: {value!r}")
    return value


def _asset(data: dict[str, Any], field: str, assets: AssetCatalogue) -> Asset:
    code = _text(data, field)
    if code not in assets:
        raise RequestError("unknown_asset", field, f"unknown asset {code!r}")
    return assets[code]


def _amount(data: dict[str, Any], field: str, asset: Asset, minimum: Decimal) -> Decimal:
    if field not in data:
        raise RequestError("missing_field", field, "is required (a decimal string)")
    try:
        amount = quantize_exact(parse_amount(data[field]), asset.decimals)
    except AmountError as error:
        raise RequestError("invalid_amount", field, str(error)) from None
    if amount <= 0:
        raise RequestError("invalid_amount", field, "must be positive")
    if amount < minimum:
        raise RequestError(
            "amount_below_minimum", field, f"must be at least {minimum} {asset.code}"
        )
    return amount


def _index(data: dict[str, Any], field: str) -> int:
    value = data.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError("invalid_field", field, "must be a non-negative integer")
    return value


def iban_is_valid(iban: str) -> bool:
    if not IBAN_PATTERN.match(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def address_is_valid(chain: str, address: str) -> bool:
    if chain == "ethereum":
        from eth_utils import is_address

        return is_address(address)
    if chain == "bitcoin":
        from bitcoinlib.keys import Address

        try:
            Address.parse(address)
        except Exception:  # bitcoinlib raises several kinds for a bad address
            return False
        return True
    if chain == "bank":
        return iban_is_valid(address)
    return False


def _created_at(data: dict[str, Any]) -> datetime:
    value = data.get("created_at")
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise RequestError("invalid_field", "created_at", "must be an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _common(data: dict[str, Any]) -> dict[str, Any]:
    request_id = data.get("request_id") or f"req-{uuid.uuid4()}"
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.match(request_id):
        raise RequestError("invalid_field", "request_id", f"has an invalid format: {request_id!r}")
    return {
        "request_id": request_id,
        "account_id": _text(data, "account_id", ACCOUNT_ID_PATTERN),
        "created_at": _created_at(data),
    }


def deposit_request(data: dict[str, Any], assets: AssetCatalogue) -> dict[str, Any]:
    record = _common(data)
    asset = _asset(data, "asset", assets)
    if not asset.deposits_enabled:
        raise RequestError("deposits_disabled", "asset", f"{asset.code} does not accept deposits")
    record.update(
        asset=asset.code,
        amount=_amount(data, "amount", asset, asset.min_deposit),
        chain=asset.chain,
        tx_hash=_text(data, "tx_hash", TX_HASH_PATTERN),
        output_index=_index(data, "output_index"),
    )
    return record


def _payout_asset(data: dict[str, Any], field: str, assets: AssetCatalogue) -> Asset:
    asset = _asset(data, field, assets)
    if not asset.payouts_enabled:
        raise RequestError("payouts_disabled", field, f"{asset.code} does not allow payouts")
    return asset


def _destination(data: dict[str, Any], field: str, asset: Asset) -> str:
    address = _text(data, field)
    if not address_is_valid(asset.chain, address):
        raise RequestError("invalid_address", field, f"not a valid {asset.chain} address")
    return address


def withdrawal_request(data: dict[str, Any], assets: AssetCatalogue) -> dict[str, Any]:
    record = _common(data)
    asset = _payout_asset(data, "asset", assets)
    record.update(
        asset=asset.code,
        amount=_amount(data, "amount", asset, asset.min_withdrawal),
        destination_address=_destination(data, "destination_address", asset),
    )
    return record


def transfer_request(data: dict[str, Any], assets: AssetCatalogue) -> dict[str, Any]:
    record = _common(data)
    kind = data.get("kind", "INTERNAL" if "to_account_id" in data else "CROSS_CHAIN")
    if kind not in ("INTERNAL", "CROSS_CHAIN"):
        raise RequestError("invalid_field", "kind", "must be INTERNAL or CROSS_CHAIN")
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
        record["amount"] = _amount(data, "amount", asset, scale_minimum(asset))
        record["to_account_id"] = _text(data, "to_account_id", ACCOUNT_ID_PATTERN)
        if record["to_account_id"] == record["account_id"]:
            raise RequestError("invalid_field", "to_account_id", "must differ from account_id")
        return record
    if not asset.deposits_enabled:
        raise RequestError("deposits_disabled", "asset", f"{asset.code} does not accept deposits")
    destination = _payout_asset(data, "destination_asset", assets)
    if destination.chain == asset.chain:
        raise RequestError("invalid_field", "destination_asset", "must be on another chain")
    if destination.unit != asset.unit:
        raise RequestError("invalid_field", "destination_asset", f"must be a {asset.unit} asset")
    minimum = max(asset.min_deposit, destination.min_withdrawal)
    amount = _amount(data, "amount", asset, minimum)
    try:
        quantize_exact(amount, destination.decimals)
    except AmountError as error:
        raise RequestError("invalid_amount", "amount", str(error)) from None
    if amount <= destination.withdrawal_fee(amount):
        raise RequestError("amount_below_fee", "amount", f"must exceed the {destination.code} fee")
    record.update(
        amount=amount,
        destination_asset=destination.code,
        destination_address=_destination(data, "destination_address", destination),
        deposit_tx_hash=_text(data, "deposit_tx_hash", TX_HASH_PATTERN),
        deposit_output_index=_index(data, "deposit_output_index"),
    )
    return record


def scale_minimum(asset: Asset) -> Decimal:
    return Decimal(1).scaleb(-asset.decimals)


BUILDERS = {
    "deposit": deposit_request,
    "withdrawal": withdrawal_request,
    "transfer": transfer_request,
}


def build_request(kind: str, data: object, assets: AssetCatalogue) -> dict[str, Any]:
    """A validated request record of `kind` from client JSON, ready to encode."""
    if kind not in BUILDERS:
        raise RequestError("unknown_kind", "kind", f"must be one of {', '.join(KINDS)}")
    if not isinstance(data, dict):
        raise RequestError("invalid_json", "json", "must be a JSON object")
    return BUILDERS[kind](data, assets)


def revalidate(kind: str, record: dict[str, Any], assets: AssetCatalogue) -> dict[str, Any]:
    """Validate a decoded request event (from any producer) with the same rules."""
    return build_request(kind, dict(record), assets)
