"""Deposit-address pools: addresses derived from an extended public key, and which is free.

Owns a chain's pool configuration (`[pools.<chain>]` beside the assets: the xpub, the
initial size, the low-water mark, the largest size, how long a binding lives), the
derivation of its addresses (BIP32 non-hardened children `<xpub>/0/<index>`: Bitcoin
P2PKH, the form the watcher reads; Ethereum the Keccak-256 of the same public key, as
wallets derive `m/44'/60'/0'/0/<index>` from the account xpub), and the rule that picks an
address for a binding. The pool is a function of the bindings topic, so every consumer
(the binder, the watchers) computes the same one without a topic of its own: its size is
`max(size, addresses ever bound + low_water)`, up to `max_size`. Never-bound addresses
are handed out first (lowest index), then the one whose binding expired longest ago: an
address is reused only when the fresh ones are gone, and a deposit is attributed by its
block's time (`core.bindings`), so a reused address never credits a late deposit of its
previous owner to the new one (a transfer after expiry waits in suspense).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from bitcoinlib.encoding import pubkeyhash_to_addr
from bitcoinlib.keys import HDKey
from bitcoinlib.networks import Network
from eth_utils import keccak, to_checksum_address

from core.addresses import BITCOIN_NETWORKS
from core.bindings import Bindings

POOL_KEYS = frozenset({"xpub", "size", "low_water", "max_size", "binding_seconds"})
POOL_CHAINS = ("ethereum", "bitcoin")


class PoolConfigError(ValueError):
    pass


@dataclass(frozen=True)
class PoolConfig:
    chain: str
    xpub: str
    size: int = 20
    low_water: int = 5
    max_size: int = 100_000
    binding_seconds: int = 86_400
    network: str = "bitcoin"  # Bitcoin's network (its address prefix)

    @property
    def binding_ms(self) -> int:
        return self.binding_seconds * 1000


def parse_pools(raw: object, bitcoin_network: str) -> dict[str, PoolConfig]:
    """The `[pools.<chain>]` tables, checked whole (the engine does not start on a bad one)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PoolConfigError("pools: a table of [pools.<chain>] tables")
    pools = {}
    for chain, spec in raw.items():
        if chain not in POOL_CHAINS or not isinstance(spec, dict):
            raise PoolConfigError(f"pools.{chain}: one of {', '.join(POOL_CHAINS)}, a table")
        unknown = sorted(set(spec) - POOL_KEYS)
        if unknown:
            raise PoolConfigError(f"pools.{chain}: unknown setting {unknown[0]!r}")
        numbers = {k: spec[k] for k in POOL_KEYS - {"xpub"} if k in spec}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PoolConfigError(f"pools.{chain}.{key}: a positive integer")
        config = PoolConfig(chain, str(spec.get("xpub", "")), network=bitcoin_network, **numbers)
        if config.low_water > config.size or config.size > config.max_size:
            raise PoolConfigError(f"pools.{chain}: low_water <= size <= max_size")
        try:
            derive(config, 0)
        except Exception as error:  # bitcoinlib raises several kinds for a bad key
            message = f"pools.{chain}.xpub: not an extended public key ({error})"
            raise PoolConfigError(message) from None
        pools[chain] = config
    return pools


def derive(config: PoolConfig, index: int) -> str:
    return _derive(config.chain, config.xpub, config.network, index)


@cache
def _account_key(xpub: str) -> HDKey:
    key = HDKey(xpub)
    if key.is_private:
        raise ValueError("a private key: the engine takes the public one (xpub) only")
    return key.child_public(0)  # the external (receiving) chain


@cache
def _derive(chain: str, xpub: str, network: str, index: int) -> str:
    child = _account_key(xpub).child_public(index)
    if chain == "bitcoin":  # the version byte of the configured network, not the xpub's
        prefix = Network(BITCOIN_NETWORKS[network][0]).prefix_address
        return pubkeyhash_to_addr(child.hash160, prefix=prefix)
    return to_checksum_address(keccak(child.public_uncompressed_byte[1:])[-20:])


@dataclass
class Pool:
    """One chain's pool, as the bindings folded so far make it."""

    config: PoolConfig
    bindings: Bindings
    index_of: dict[str, int] = field(default_factory=dict)  # normalised address -> index
    grown_at: int = -1  # the bindings' version the pool last grew at

    def size(self) -> int:
        used = sum(1 for a in self.index_of if a in self.bindings.history)
        return min(self.config.max_size, max(self.config.size, used + self.config.low_water))

    def grow(self) -> None:
        """Derive addresses until the pool has its size (once per change of bindings)."""
        if self.grown_at == self.bindings.version:
            return
        while len(self.index_of) < self.size():
            index = len(self.index_of)
            self.index_of[self.bindings.normalize(derive(self.config, index))] = index
        self.grown_at = self.bindings.version

    def addresses(self) -> list[str]:
        """The pool's addresses in index order."""
        self.grow()
        return [derive(self.config, i) for i in range(len(self.index_of))]

    def contains(self, address: str) -> bool:
        self.grow()
        return self.bindings.normalize(address) in self.index_of

    def index(self, address: str) -> int | None:
        self.grow()
        return self.index_of.get(self.bindings.normalize(address))

    def fresh(self) -> int:
        """Addresses never bound: what is left before addresses are reused."""
        return sum(1 for a in self.addresses() if not self.bindings.history_of(a))

    def pick(self, account_id: str, now_ms: int) -> tuple[str, bool]:
        """(address, already bound to the account): its live binding, a never-bound
        address (lowest index), or the one expired longest ago; ValueError if none."""
        expired: list[tuple[int, str]] = []
        fresh = None
        for address in self.addresses():
            history = self.bindings.history_of(address)
            if not history:
                fresh = fresh or address
                continue
            newest = history[-1]
            if newest.live_at(now_ms):
                if newest.account_id == account_id:
                    return address, True
            elif newest.expires_ms is not None:
                expired.append((newest.expires_ms, address))
        if fresh is not None:
            return fresh, False
        if expired:
            return min(expired)[1], False
        raise ValueError(f"the {self.config.chain} pool has no free address")
