"""What a chain watcher reads from topics: deposit addresses (bindings, the pool) and prices.

Owns the watcher's view of address-bindings and prices: which addresses are deposit
addresses (every address ever bound, and the chain's pool: `core.address_pool`), whose a
deposit is at its block's time (`core.bindings`; nobody's: the suspense account), and the
USD price of each asset for its confirmation level. Folded by the watcher's topic view
under the view's lock; read by the watcher while it holds the same lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.confirmations import Price
from core.address_pool import Pool, PoolConfig
from core.bindings import Bindings
from core.fields import SUSPENSE_ACCOUNT
from topics import catalogue

log = logging.getLogger(__name__)

MAX_PRICE_CLOCK_AHEAD = timedelta(minutes=1)


class ChainFacts:
    """What the watcher reads from topics: deposit addresses and USD prices.

    Bindings follow `core.bindings` (malformed or conflicting ones are ignored); the
    addresses watched are every address ever bound and the chain's pool
    (`core.address_pool`), so a transfer to a pool address nobody holds is seen too (and
    credited to suspense). A price that is not positive, or stamped in the future, is
    ignored: it would make every deposit need the fewest confirmations (a missing price
    means the most).
    """

    def __init__(
        self,
        chain: str,
        normalize: Callable[[str], str],
        network: str = "",
        pool: PoolConfig | None = None,
    ) -> None:
        self.chain = chain
        self.bindings = Bindings(chain, normalize, network or "bitcoin")
        self.pool = None if pool is None else Pool(pool, self.bindings)
        self.prices: dict[str, Price] = {}

    def watched(self, address: str) -> bool:
        """Whether `address` is a deposit address: bound once, or in the pool."""
        if self.bindings.history_of(address):
            return True
        return self.pool is not None and self.pool.contains(address)

    def deposit_addresses(self) -> list[str]:
        addresses = set(self.bindings.history)
        if self.pool is not None:
            addresses.update(self.bindings.normalize(a) for a in self.pool.addresses())
        return sorted(addresses)

    def account_at(self, address: str, block_second_ms: int) -> str:
        """The account bound at the block's time; suspense when none (or not one) was."""
        return self.bindings.account_at(address, block_second_ms) or SUSPENSE_ACCOUNT

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.ADDRESS_BINDINGS:
            self.bindings.fold(value)
        elif topic == catalogue.PRICES:
            price = value["usd_price"]
            ahead = value["as_of"] - datetime.now(UTC)
            if price > 0 and ahead < MAX_PRICE_CLOCK_AHEAD:
                self.prices[value["asset"]] = Price(price, value["as_of"])
            else:
                log.warning(
                    "price of %s ignored: %s as of %s", value["asset"], price, value["as_of"]
                )
