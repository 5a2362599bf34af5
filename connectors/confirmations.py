"""Security levels: how many confirmations a deposit needs, from its USD value.

Owns the rule: an asset's `confirmation_levels_usd` (configuration) lists ascending
bounds; a deposit worth less than a bound needs that level's confirmations, otherwise
the last level's. The USD value comes from the newest price of the asset; a missing
price, or one older than `max_price_age`, gives the asset's maximum (never fewer
confirmations because a feed is down).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from core.assets import Asset

MAX_PRICE_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class Price:
    usd: Decimal
    as_of: datetime


def confirmations_required(
    asset: Asset,
    amount: Decimal,
    price: Price | None,
    now: datetime,
    max_price_age: timedelta = MAX_PRICE_AGE,
) -> int:
    if price is None or now - price.as_of > max_price_age:
        return asset.max_confirmations
    value_usd = amount * price.usd
    for level in asset.confirmation_levels:
        if level.below_usd is None or value_usd < level.below_usd:
            return level.confirmations
    return asset.max_confirmations
