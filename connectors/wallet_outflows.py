"""What a chain watcher knows of the operator's wallets (pure: no I/O).

Owns two things. The outputs that pay operator wallets, for chains of outputs (Bitcoin):
"txid:index" -> [address, value in base units, block created, block spent or None], kept in
the watcher's state file, a spent one for `REORG_WINDOW` blocks so that a reorg can make it
unspent again. And the `WalletOutflow` record of a transaction that takes value out of an
operator wallet, which reconciliation matches with what the engine prepared
(`streams.reconciliation.wallets`): id (chain, tx hash, asset), so a block read again
publishes the same outflow; an amount the schema cannot hold is clamped to its largest.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.assets import Asset
from core.money import MAX_AMOUNT

WalletOutputs = dict[str, list]


def hold(outputs: WalletOutputs, key: str, address: str, units: int, block: int) -> None:
    outputs[key] = [address, units, block, None]


def spend(outputs: WalletOutputs, keys: Iterable[str], block: int) -> tuple[int, str]:
    """Mark the held outputs among `keys` spent in `block`: (their value, one wallet)."""
    spent, wallet = 0, ""
    for key in keys:
        held = outputs.get(key)
        if held is not None and held[3] is None:
            held[3] = block
            spent += held[1]
            wallet = wallet or held[0]
    return spent, wallet


def unspent_at(outputs: WalletOutputs, block: int) -> int:
    """The value of the held outputs created up to `block` and not spent by then."""
    return sum(
        units
        for _address, units, created, spent in outputs.values()
        if created <= block and (spent is None or spent > block)
    )


def rewind(outputs: WalletOutputs, fork: int) -> None:
    """Forget what blocks above the fork did to the outputs."""
    for key, (_address, _units, created, spent) in list(outputs.items()):
        if created > fork:
            del outputs[key]
        elif spent is not None and spent > fork:
            outputs[key][3] = None


def prune(outputs: WalletOutputs, below: int) -> None:
    """Forget the outputs spent below block `below` (no reorg reaches them)."""
    for key, (_address, _units, _created, spent) in list(outputs.items()):
        if spent is not None and spent < below:
            del outputs[key]


def outflow_record(
    chain: str,
    asset: Asset,
    tx_hash: str,
    block: tuple[int, str],
    wallet: tuple[str, str],
    to_address: str,
    units: int,
) -> dict[str, Any]:
    """`units` of `asset` left `wallet` (address, HOT or DEPOSIT) in `block` (number, hash)."""
    largest = MAX_AMOUNT.scaleb(asset.decimals) - 1
    return {
        "outflow_id": f"{chain}:{tx_hash}:{asset.code}",
        "chain": chain,
        "asset": asset.code,
        "tx_hash": tx_hash,
        "block_number": block[0],
        "block_hash": block[1],
        "wallet_address": wallet[0],
        "wallet_role": wallet[1],
        "to_address": to_address or "",
        "amount": min(Decimal(units), largest).scaleb(-asset.decimals),
        "observed_at": datetime.now(UTC),
    }
