"""Asset configuration: chain, kind, contract, scale, switches, fees and confirmation levels.

Loaded once from TOML (`core/assets.toml` or `TOKENGINE_ASSETS_FILE`). Every other
module asks this one for an asset's rules by its code; nothing hard-codes them.

Guarantees: a configuration that contradicts itself is refused whole when it is loaded
(`AssetConfigError`, so the engine does not start): unknown keys, two native coins on one
chain, a native coin at another scale than its chain's, a token without its standard, a
contract on a chain that has none, a bank asset without its bank account and currency,
two assets on one bank account or contract, unordered confirmation levels. A
configuration that is only incomplete (an ERC20 token whose contract is not set yet, a
bank asset, which no payout connector pays) is loaded, and `payouts_unavailable` says why
its payouts are refused at validation.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path

from core.address_pool import PoolConfig, PoolConfigError, parse_pools
from core.addresses import BITCOIN_NETWORKS, ETH_ADDRESS
from core.fields import ASSET_CODE, CURRENCY
from core.money import MAX_DECIMALS, AmountError, parse_amount, quantize_exact, quantize_up
from core.wallets import ChainWallets, WalletConfigError, parse_wallets

CHAINS = ("ethereum", "bitcoin", "bank")
NATIVE_DECIMALS = {"ethereum": 18, "bitcoin": 8}  # ETH in wei, BTC in satoshi
TOKEN_STANDARDS = {"ethereum": ("erc20",)}
BANK_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # an IBAN or the bank's own id
ASSET_KEYS = frozenset(
    {
        "unit",
        "chain",
        "token_standard",
        "contract",
        "network",
        "segwit",
        "decimals",
        "deposits_enabled",
        "payouts_enabled",
        "fee_fixed",
        "fee_percent",
        "failure_fee",
        "min_deposit",
        "min_withdrawal",
        "rounding_tolerance",
        "fee_floor",
        "bank_account",
        "currency",
        "confirmation_levels_usd",
    }
)


class UnknownAsset(KeyError):
    pass


class AssetConfigError(ValueError):
    """The asset configuration contradicts itself: the engine refuses to start on it."""


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
    token_standard: str = ""  # "" for the chain's native coin, "erc20" for a token
    contract: str = ""
    network: str = ""  # bitcoin: bitcoin (mainnet), testnet or regtest
    segwit: bool = True  # bitcoin: bech32 destinations accepted
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

    @property
    def is_native(self) -> bool:
        """The chain's own coin (ETH, BTC), not a token and not a bank balance."""
        return self.chain in NATIVE_DECIMALS and not self.token_standard

    @property
    def payouts_unavailable(self) -> str | None:
        """Why no payout of this asset can be executed as configured (None: it can)."""
        if self.chain == "bank":
            return f"{self.code} is held at a bank, and no bank payout connector exists"
        if self.token_standard and not self.contract:
            return f"{self.code}: no {self.token_standard} contract is configured"
        return None

    @property
    def deposits_unavailable(self) -> str | None:
        """Why no deposit of this asset can be observed as configured (None: it can)."""
        if self.token_standard and not self.contract:
            return f"{self.code}: no {self.token_standard} contract is configured"
        return None


def _levels(code: str, entries: object) -> tuple[ConfirmationLevel, ...]:
    if not isinstance(entries, list) or not entries:
        raise AssetConfigError(f"asset {code}: confirmation_levels_usd must be a list")
    levels = []
    for entry in entries:
        bound, _, confirmations = str(entry).partition(":")
        try:
            below = None if bound.strip() == "*" else parse_amount(bound.strip())
            required = int(confirmations)
        except (AmountError, ValueError):
            raise AssetConfigError(f"asset {code}: bad confirmation level {entry!r}") from None
        if required < 0:
            raise AssetConfigError(f"asset {code}: negative confirmations in {entry!r}")
        levels.append(ConfirmationLevel(below, required))
    bounded = [level.below_usd for level in levels if level.below_usd is not None]
    if bounded != sorted(bounded) or len(set(bounded)) != len(bounded):
        raise AssetConfigError(f"asset {code}: confirmation levels must be in ascending order")
    if levels[-1].below_usd is not None or len(bounded) != len(levels) - 1:
        raise AssetConfigError(f"asset {code}: the last confirmation level, and only it, is '*'")
    return tuple(levels)


def _asset(code: str, raw: dict) -> Asset:
    def fail(message: str) -> AssetConfigError:
        return AssetConfigError(f"asset {code}: {message}")

    if not ASSET_CODE.fullmatch(code):
        raise fail("a code is a letter then up to 15 letters or digits")
    unknown = sorted(set(raw) - ASSET_KEYS)
    if unknown:
        raise fail(f"unknown setting {unknown[0]!r}")
    for name in (
        "chain",
        "unit",
        "token_standard",
        "contract",
        "network",
        "bank_account",
        "currency",
    ):
        if name in raw and not isinstance(raw[name], str):
            raise fail(f"{name} must be a string")
    chain = raw.get("chain")
    if chain not in CHAINS:
        raise fail(f"unknown chain {chain!r} (one of {', '.join(CHAINS)})")
    decimals = raw.get("decimals")
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise fail("decimals must be an integer")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise fail(f"decimals must be 0..{MAX_DECIMALS}")
    standard = raw.get("token_standard", "")
    contract = raw.get("contract", "")
    if standard and standard not in TOKEN_STANDARDS.get(chain, ()):
        raise fail(f"no token standard {standard!r} on {chain}")
    if contract and not standard:
        raise fail('a contract needs its token_standard (e.g. token_standard = "erc20")')
    if contract and not ETH_ADDRESS.fullmatch(contract):
        raise fail(f"contract {contract!r} is not an address (0x and 40 hex digits)")
    if chain in NATIVE_DECIMALS and not standard and decimals != NATIVE_DECIMALS[chain]:
        raise fail(
            f"the native coin of {chain} has {NATIVE_DECIMALS[chain]} decimals, not {decimals}"
            " (a token needs token_standard and contract)"
        )
    network = raw.get("network", "bitcoin" if chain == "bitcoin" else "")
    if chain == "bitcoin" and network not in BITCOIN_NETWORKS:
        raise fail(f"network must be one of {', '.join(BITCOIN_NETWORKS)}")
    if chain != "bitcoin" and "network" in raw:
        raise fail("network is a setting of bitcoin assets")
    bank_account, currency = raw.get("bank_account", ""), raw.get("currency", "")
    if chain == "bank" and not (bank_account and CURRENCY.fullmatch(str(currency))):
        raise fail("a bank asset needs bank_account and its currency (ISO 4217)")
    if bank_account and not BANK_ACCOUNT.fullmatch(str(bank_account)):
        raise fail("bank_account: letters, digits, _ and - only (an IBAN has no spaces)")
    if chain != "bank" and (bank_account or currency):
        raise fail("bank_account and currency are settings of bank assets")
    for flag in ("deposits_enabled", "payouts_enabled", "segwit"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise fail(f"{flag} must be true or false")

    def amount(name: str) -> Decimal:
        try:
            return quantize_exact(parse_amount(raw.get(name, "0")), decimals)
        except AmountError as error:
            raise fail(f"{name}: {error}") from None

    try:
        fee_percent = parse_amount(raw.get("fee_percent", "0"))
    except AmountError as error:
        raise fail(f"fee_percent: {error}") from None
    if fee_percent >= 100:
        raise fail("fee_percent must be below 100")
    return Asset(
        code=code,
        chain=chain,
        decimals=decimals,
        deposits_enabled=raw.get("deposits_enabled", True),
        payouts_enabled=raw.get("payouts_enabled", True),
        fee_fixed=amount("fee_fixed"),
        fee_percent=fee_percent,
        failure_fee=amount("failure_fee"),
        min_deposit=amount("min_deposit"),
        min_withdrawal=amount("min_withdrawal"),
        rounding_tolerance=amount("rounding_tolerance"),
        fee_floor=amount("fee_floor") if "fee_floor" in raw else None,
        unit=raw.get("unit", code),
        token_standard=standard,
        contract=contract,
        network=network,
        segwit=raw.get("segwit", True),
        bank_account=bank_account,
        currency=currency,
        confirmation_levels=_levels(code, raw.get("confirmation_levels_usd", ["*:0"])),
    )


def _check_catalogue(assets: dict[str, Asset]) -> None:
    """What no single asset shows: two natives of a chain, shared accounts or contracts."""
    seen: dict[tuple[str, str], str] = {}
    for asset in assets.values():
        claims = []
        if asset.is_native:
            claims.append(("the native coin of", asset.chain))
        if asset.contract:
            claims.append(("contract", asset.contract.lower()))
        if asset.bank_account:
            claims.append(("bank account", asset.bank_account))
        for claim in claims:
            if claim in seen:
                raise AssetConfigError(
                    f"assets {seen[claim]} and {asset.code} are both {claim[0]} {claim[1]}"
                )
            seen[claim] = asset.code


@dataclass(frozen=True)
class AssetCatalogue:
    assets: dict[str, Asset]
    pools: dict[str, PoolConfig] = field(default_factory=dict)  # chain -> its address pool
    wallets: dict[str, ChainWallets] = field(default_factory=dict)  # chain -> cold, sweeps

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

    def get(self, code: object) -> Asset | None:
        return self.assets.get(code) if isinstance(code, str) else None

    def by_bank_account(self, account_id: str) -> Asset | None:
        return self.bank_accounts.get(account_id)

    @cached_property
    def bank_accounts(self) -> dict[str, Asset]:
        return {a.bank_account: a for a in self.assets.values() if a.bank_account}

    def on_chain(self, chain: str) -> list[Asset]:
        return [asset for asset in self.assets.values() if asset.chain == chain]

    def native(self, chain: str) -> Asset | None:
        """The chain's own coin (it pays the chain's fees), if it is configured."""
        return next((a for a in self.on_chain(chain) if a.is_native), None)


def parse_assets(text: str) -> AssetCatalogue:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise AssetConfigError(f"not TOML: {error}") from None
    tables = raw.get("assets")
    if not isinstance(tables, dict) or not tables:
        raise AssetConfigError("no [assets.CODE] tables")
    if any(not isinstance(spec, dict) for spec in tables.values()):
        raise AssetConfigError("every asset is a table: [assets.CODE]")
    assets = {code: _asset(code, spec) for code, spec in tables.items()}
    _check_catalogue(assets)
    network = next((a.network for a in assets.values() if a.chain == "bitcoin"), "bitcoin")
    try:
        pools = parse_pools(raw.get("pools"), network or "bitcoin")
        wallets = parse_wallets(
            raw.get("wallets"), {a.code: (a.chain, a.decimals) for a in assets.values()}
        )
    except (PoolConfigError, WalletConfigError) as error:
        raise AssetConfigError(str(error)) from None
    unknown = sorted(set(raw) - {"assets", "pools", "wallets"})
    if unknown:
        raise AssetConfigError(f"unknown table {unknown[0]!r}")
    return AssetCatalogue(assets, pools, wallets)


@cache
def load_assets(path: Path) -> AssetCatalogue:
    return parse_assets(Path(path).read_text())
