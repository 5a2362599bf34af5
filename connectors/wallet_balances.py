"""What the operator's wallets on a chain hold, as the `WalletBalance` record (pure: no I/O).

Owns the record a chain watcher publishes after each step that read new blocks, per asset
of its chain: the sum all the operator's wallets there hold at the last block read (each
chain reads its own: `connectors.ethereum` asks the node at that block, `connectors.bitcoin`
sums the wallet outputs it keeps), and the deposits in those blocks not yet at their
security level (on chain, not yet for the ledger). Reconciliation compares it with the
ledger (`streams.reconciliation.chain_records`). Id (chain, asset, block), so a step done again
after a crash publishes the same record; an amount the schema cannot hold is clamped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.assets import Asset
from core.money import MAX_AMOUNT


def unconfirmed_units(tracked: Iterable[Any], asset: Asset) -> int:
    """The base units of the deposits under watch of `asset` not yet confirmed."""
    return sum(
        int(Decimal(t.amount).scaleb(asset.decimals))
        for t in tracked
        if t.asset == asset.code and not t.confirmed
    )


def balance_record(
    chain: str,
    asset: Asset,
    block: tuple[int, str],
    head: int,
    held: tuple[int, int],
    unconfirmed: int,
) -> dict[str, Any]:
    """`held` (base units, wallets summed) of `asset` at `block` (number, hash)."""
    largest = MAX_AMOUNT.scaleb(asset.decimals) - 1

    def amount(units: int) -> Decimal:
        return min(Decimal(units), largest).scaleb(-asset.decimals)

    return {
        "balance_id": f"{chain}:{asset.code}:{block[0]}",
        "chain": chain,
        "asset": asset.code,
        "block_number": block[0],
        "block_hash": block[1],
        "head": head,
        "balance": amount(held[0]),
        "unconfirmed": amount(unconfirmed),
        "wallets": held[1],
        "observed_at": datetime.now(UTC),
    }
