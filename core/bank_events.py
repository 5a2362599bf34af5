"""What a bank event may say about its bank account: one check for the connector and
reconciliation.

A `BankNotification`, `BankStatement` or `BankBalance` names an operator bank account,
which must be configured (it backs one asset); its currency and every entry's must be
that account's; every amount must be exact at the asset's scale (no more decimals than
the currency has); every date must be a calendar date. Anything else is refused with a
`FieldError` naming the field, before the event is published or applied.
"""

from __future__ import annotations

from typing import Any

from core import fields
from core.assets import Asset, AssetCatalogue
from core.fields import FieldError
from core.money import AmountError, quantize_exact
from core.reasons import Reason

ENTRY_DATES = ("booking_date", "value_date")


def bank_asset(event: dict[str, Any], assets: AssetCatalogue) -> Asset:
    """The asset the event's bank account backs, or FieldError('unknown_bank_account')."""
    asset = assets.by_bank_account(event.get("account_id") or "")
    if asset is None:
        raise FieldError(
            Reason.UNKNOWN_BANK_ACCOUNT,
            "account_id",
            f"{fields.shown(event.get('account_id'))} is not a configured bank account",
        )
    return asset


def exact(asset: Asset, value: object, field: str) -> None:
    try:
        quantize_exact(value, asset.decimals)  # a Decimal from the parser or the wire
    except (AmountError, AttributeError, TypeError):
        raise FieldError(
            Reason.INVALID_AMOUNT,
            field,
            f"{value} is not an amount of {asset.currency} (at most {asset.decimals} decimals)",
        ) from None


def same_currency(asset: Asset, currency: object, field: str) -> None:
    if currency != asset.currency:
        raise FieldError(
            Reason.CURRENCY_MISMATCH,
            field,
            f"{fields.shown(currency)} on account {asset.bank_account}, whose currency is "
            f"{asset.currency}",
        )


def check_bank_event(event: dict[str, Any], assets: AssetCatalogue) -> Asset:
    """The asset of a valid bank event (notification, statement or balance)."""
    asset = bank_asset(event, assets)
    if event.get("currency"):
        same_currency(asset, event["currency"], "currency")
    for index, entry in enumerate(event.get("entries") or []):
        where = f"entries[{index}]"
        same_currency(asset, entry.get("currency"), f"{where}.currency")
        exact(asset, entry.get("amount"), f"{where}.amount")
        for name in ENTRY_DATES:
            if entry.get(name) is not None:
                fields.iso_date(entry[name], f"{where}.{name}")
    for name in ("opening_balance", "closing_balance", "balance"):
        if name in event:
            exact(asset, event[name], name)
    if "statement_date" in event:
        fields.iso_date(event["statement_date"], "statement_date")
    return asset
