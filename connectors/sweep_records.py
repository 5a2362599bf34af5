"""What the sweeper knows besides the chain: its recorded sweeps, the pool, the breaker,
and the pool's private keys.

Owns `SweepFacts` (folded from sweep-results, address-bindings and breaker-state: each
sweep's newest result, a final one never replaced by a SUBMITTED; the pool as the bindings
make it, `core.address_pool`; the breaker states; the addresses a sweep of which reverted,
never swept again until an operator looks) and `PoolKeys` (the child keys of the pool's
account key, an extended private key that must be the configured xpub's). A recorded
result the sweeper could not act on (a hash that is not one, bytes that are not that
transaction's, a nonce that is not one) is ignored and logged, never trusted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bitcoinlib.keys import HDKey
from eth_account import Account
from web3 import Web3

from connectors.chain_facts import ChainFacts
from core.address_pool import PoolConfig, derive
from core.reasons import Reason
from topics import catalogue

log = logging.getLogger(__name__)

TX_HASH = re.compile(r"0x[0-9a-f]{64}")


class SweeperConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Plan:
    """One sweep to make: from a pool address (its index) to an operator wallet, at a gas
    limit and price fixed when it is planned (the fee subtracted is the fee signed)."""

    address: str
    index: int
    units: int  # wei moved
    to: str
    to_role: str  # HOT or COLD
    gas: int
    gas_price: int


def usable(result: dict[str, Any]) -> bool:
    """A result names a transaction: its hash, its nonce, and bytes of that hash."""
    tx_hash, nonce, raw = result.get("tx_hash"), result.get("nonce"), result.get("raw_transaction")
    if not (isinstance(tx_hash, str) and TX_HASH.fullmatch(tx_hash)):
        return False
    if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
        return False
    try:
        return Web3.keccak(hexstr=raw).to_0x_hex() == tx_hash
    except (ValueError, TypeError):
        return False


@dataclass
class SweepFacts:
    chain: ChainFacts
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    reverted: set[str] = field(default_factory=set)  # addresses (lower case)

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.SWEEP_RESULTS:
            if not usable(value):
                log.warning("sweep result of %s ignored: unusable", value["sweep_id"])
                return
            current = self.results.get(value["sweep_id"])
            if current is None or current["status"] == "SUBMITTED":
                self.results[value["sweep_id"]] = value
            if value["reason"] == Reason.REVERTED:
                self.reverted.add(value["from_address"].lower())
        elif topic == catalogue.BREAKER_STATE:
            self.breakers[value["scope"]] = value["state"]
        else:
            self.chain.fold(topic, value)

    def open_sweeps(self) -> list[dict[str, Any]]:
        return [r for r in self.results.values() if r["status"] == "SUBMITTED"]


class PoolKeys:
    """The private keys of a pool's addresses, from the account's extended private key."""

    def __init__(self, pool: PoolConfig, xprv: str) -> None:
        try:
            key = HDKey(xprv.strip())
        except Exception as error:  # bitcoinlib raises several kinds for a bad key
            raise SweeperConfigError(f"not an extended private key ({error})") from None
        if not key.is_private:
            raise SweeperConfigError("an extended public key: the sweeper signs, it needs xprv")
        self.external = key.child_private(0)
        if self.address(0) != derive(pool, 0):
            raise SweeperConfigError("the extended private key is not the pool's xpub's")

    def key(self, index: int) -> bytes:
        return self.external.child_private(index).private_byte

    def address(self, index: int) -> str:
        return Account.from_key(self.key(index)).address
