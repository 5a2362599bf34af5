"""Asset configuration: chain, contract, scale, switches, fees and confirmation levels.

Loaded once from TOML (`tokengine/assets.toml` or `TOKENGINE_ASSETS_FILE`). Every other
module asks this one for an asset's rules by its code; nothing hard-codes them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path

from tokengine.money import MAX_DECIMALS, parse_amount, quantize_exact, quantize_up

CHAINS = ("ethereum", "bitcoin", "bank")


class UnknownAsset(KeyError):
    pass


@dataclass(frozen=True)
class ConfirmationLevel:
    """Deposits worth less than `below_usd` need `confirmations`; None means 'otherwise'."""

    below_usd: Decimal | None
    confirmations: int


@dataclass(frozen=True)
class Asset:
    code: str
    chain: str
    decimals: int
    deposits_enabled: bool
    payouts_enabled: bool
    fee_fixed: Decimal
    fee_percent: Decimal
    failure_fee: Decimal
    min_deposit: Decimal
    min_withdrawal: Decimal
    rounding_tolerance: Decimal
    fee_floor: Decimal | None = None  # alert and trip the breaker below this fee balance
    unit: str = ""
    contract: str = ""
    bank_account: str = ""
    currency: str = ""
    confirmation_levels: tuple[ConfirmationLevel, ...] = ()

    def amount(self, value: object) -> Decimal:
        """Parse and check an amount of this asset: exact at its scale or an error."""
        return quantize_exact(parse_amount(value), self.decimals)

    def withdrawal_fee(self, amount: Decimal) -> Decimal:
        return quantize_up(self.fee_fixed + amount * self.fee_percent / 100, self.decimals)

    @property
    def max_confirmations(self) -> int:
        return max((level.confirmations for level in self.confirmation_levels), default=0)


def _levels(entries: list[str]) -> tuple[ConfirmationLevel, ...]:
    levels = []
    for entry in entries:
        bound, confirmations = entry.split(":")
        below = None if bound.strip() == "*" else parse_amount(bound)
        levels.append(ConfirmationLevel(below, int(confirmations)))
    bounded = [level.below_usd for level in levels if level.below_usd is not None]
    assert bounded == sorted(bounded), "confirmation levels must be in ascending order"
    assert levels[-1].below_usd is None, "the last confirmation level must be '*'"
    return tuple(levels)


def _asset(code: str, raw: dict) -> Asset:
    decimals = int(raw["decimals"])
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"asset {code}: decimals must be 0..{MAX_DECIMALS}")
    if raw["chain"] not in CHAINS:
        raise ValueError(f"asset {code}: unknown chain {raw['chain']!r}")

    def amount(name: str) -> Decimal:
        return quantize_exact(parse_amount(raw.get(name, "0")), decimals)

    return Asset(
        code=code,
        chain=raw["chain"],
        decimals=decimals,
        deposits_enabled=bool(raw.get("deposits_enabled", True)),
        payouts_enabled=bool(raw.get("payouts_enabled", True)),
        fee_fixed=amount("fee_fixed"),
        fee_percent=parse_amount(raw.get("fee_percent", "0")),
        failure_fee=amount("failure_fee"),
        min_deposit=amount("min_deposit"),
        min_withdrawal=amount("min_withdrawal"),
        rounding_tolerance=amount("rounding_tolerance"),
        fee_floor=amount("fee_floor") if "fee_floor" in raw else None,
        unit=raw.get("unit", code),
        contract=raw.get("contract", ""),
        bank_account=raw.get("bank_account", ""),
        currency=raw.get("currency", ""),
        confirmation_levels=_levels(raw.get("confirmation_levels_usd", ["*:0"])),
    )


@dataclass(frozen=True)
class AssetCatalogue:
    assets: dict[str, Asset]

    def __getitem__(self, code: str) -> Asset:
        try:
            return self.assets[code]
        except KeyError:
            raise UnknownAsset(code) from None

    @cached_property
    def bank_backed(self) -> frozenset[str]:
        """Codes of the assets held in a bank account (fiat), not on a chain."""
        return frozenset(code for code, asset in self.assets.items() if asset.bank_account)

    def __contains__(self, code: object) -> bool:
        return code in self.assets

    def by_bank_account(self, account_id: str) -> Asset | None:
        return self.bank_accounts.get(account_id)

    @cached_property
    def bank_accounts(self) -> dict[str, Asset]:
        return {a.bank_account: a for a in self.assets.values() if a.bank_account}


def parse_assets(text: str) -> AssetCatalogue:
    raw = tomllib.loads(text)
    return AssetCatalogue({code: _asset(code, spec) for code, spec in raw["assets"].items()})


@cache
def load_assets(path: Path) -> AssetCatalogue:
    return parse_assets(Path(path).read_text())
