"""The operator's wallets per chain beside the deposit addresses, and where sweeps go.

Owns the `[wallets.<chain>]` tables of the asset configuration: the chain's cold wallet
(`cold`, an address whose keys are never on the engine's machine: the engine sends to it
and watches it, it never signs for it) and, per asset (`[wallets.<chain>.<CODE>]`), the
sweep thresholds: `max_balance`, what the hot wallet is filled up to (a sweep that would
take it above goes to the cold wallet instead; no cold wallet: it goes to the hot wallet
all the same), and `min_collection_amount`, the least a sweep moves (less stays at the
deposit address until more arrives). Amounts are read by the one amount parser and must
be exact at the asset's decimals; a bad table stops the engine from starting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.addresses import ethereum_problem
from core.money import AmountError, parse_amount, quantize_exact

WALLET_CHAINS = ("ethereum",)  # chains whose deposit addresses are swept
LIMIT_KEYS = frozenset({"max_balance", "min_collection_amount"})


class WalletConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SweepLimits:
    max_balance: Decimal | None = None  # None: the hot wallet takes everything
    min_collection_amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class ChainWallets:
    chain: str
    cold: str | None = None
    limits: dict[str, SweepLimits] = field(default_factory=dict)  # asset code ->

    def limits_of(self, code: str) -> SweepLimits:
        return self.limits.get(code, SweepLimits())


def parse_wallets(raw: object, decimals: dict[str, tuple[str, int]]) -> dict[str, ChainWallets]:
    """The `[wallets.<chain>]` tables; `decimals` maps each asset code to (chain, decimals)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WalletConfigError("wallets: a table of [wallets.<chain>] tables")
    wallets = {}
    for chain, spec in raw.items():
        if chain not in WALLET_CHAINS or not isinstance(spec, dict):
            raise WalletConfigError(f"wallets.{chain}: one of {', '.join(WALLET_CHAINS)}, a table")
        cold = spec.get("cold")
        if cold is not None and (not isinstance(cold, str) or ethereum_problem(cold)):
            problem = ethereum_problem(cold) if isinstance(cold, str) else "not text"
            raise WalletConfigError(f"wallets.{chain}.cold: {problem}")
        limits = {}
        for code, table in spec.items():
            if code == "cold":
                continue
            if decimals.get(code, ("",))[0] != chain or not isinstance(table, dict):
                message = f"wallets.{chain}.{code}: not an asset of {chain} (a table)"
                raise WalletConfigError(message)
            limits[code] = _limits(f"wallets.{chain}.{code}", table, decimals[code][1])
        wallets[chain] = ChainWallets(chain, cold, limits)
    return wallets


def _limits(where: str, table: dict, decimals: int) -> SweepLimits:
    unknown = sorted(set(table) - LIMIT_KEYS)
    if unknown:
        raise WalletConfigError(f"{where}: unknown setting {unknown[0]!r}")
    amounts = {}
    for key, value in table.items():
        try:
            amounts[key] = quantize_exact(parse_amount(value), decimals)
        except AmountError as error:
            raise WalletConfigError(f"{where}.{key}: {error}") from None
    return SweepLimits(**amounts)
