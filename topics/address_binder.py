"""The binder: hands a user a deposit address from its chain's pool, for a while.

Owns `POST /api/v1/accounts/{id}/deposit-addresses` and `tokengine deposit-address`
behind one rule: the account's live pool binding if it has one (the same address while
the binding lives), else a new binding of the address the pool picks
(`core.address_pool`: never-bound first, then the one expired longest ago) for the
chain's `binding_seconds`. The binder reads address-bindings as a whole-topic view; the
topic's order decides between two binders that picked one address at once (each key's
bindings have one order, and `core.bindings` refuses the later one): a binder publishes,
waits until its view has folded its own record, and takes it only if it stands, else it
picks again. Bindings are made by the engine (signed records), never by a client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from core import fields
from core.address_pool import Pool
from core.assets import AssetCatalogue
from core.bindings import Binding, Bindings, epoch_ms
from core.fields import FieldError
from core.reasons import Reason
from topics import catalogue, operator_records
from topics.authentication import SigningProducer
from topics.codec import Codec
from topics.view import TopicView

ATTEMPTS = 5  # binders racing for one address: each loser picks again
NORMALIZE = {"ethereum": str.lower}

pool_fresh = Gauge(
    "token_engine_deposit_pool_fresh",
    "Deposit addresses never bound, per chain (below the low-water mark: addresses reused).",
    ["chain"],
)
pool_low_water = Gauge(
    "token_engine_deposit_pool_low_water", "The pool's low-water mark, per chain.", ["chain"]
)


class PoolExhausted(Exception):
    pass


@dataclass(frozen=True)
class BoundAddress:
    chain: str
    address: str
    account_id: str
    bound_at: datetime
    expires_at: datetime
    index: int
    new: bool  # False: the account's live binding, handed out again

    def shown(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "new"}


class Binder:
    """Publishes through `producer` (signed); reads bindings with the producer's topic
    prefix and record keys."""

    def __init__(
        self, bootstrap: str, codec: Codec, producer: SigningProducer, assets: AssetCatalogue
    ) -> None:
        self.prefix, self.codec, self.producer = producer.prefix, codec, producer
        network = next((a.network for a in assets.on_chain("bitcoin")), "") or "bitcoin"
        self.pools = {
            chain: Pool(config, Bindings(chain, NORMALIZE.get(chain, str), network))
            for chain, config in assets.pools.items()
        }
        self.lock = threading.Lock()  # one pick and publish at a time in this process
        self.view = TopicView(bootstrap, self.prefix, codec, producer.auth,
                              [catalogue.ADDRESS_BINDINGS], self._fold, "binder")  # fmt: skip
        for chain, pool in self.pools.items():
            pool_fresh.labels(chain).set_function(lambda pool=pool: self._fresh(pool))
            pool_low_water.labels(chain).set(pool.config.low_water)

    def _fresh(self, pool: Pool) -> int:
        with self.view.lock:
            return pool.fresh()

    def _fold(self, _topic: str, value: dict[str, Any]) -> None:
        pool = self.pools.get(value.get("chain"))
        if pool is not None:
            pool.bindings.fold(value)

    def start(self) -> Binder:
        self.view.start()
        return self

    def stop(self) -> None:
        self.view.stop()

    def pool(self, chain: object) -> Pool:
        pool = self.pools.get(chain) if isinstance(chain, str) else None
        if pool is None:
            chains = ", ".join(sorted(self.pools)) or "none configured"
            raise FieldError(Reason.INVALID_FIELD, "chain", f"a chain with a pool ({chains})")
        return pool

    def bind(self, chain: object, account_id: str, actor: str | None) -> BoundAddress:
        """The account's deposit address on `chain` (FieldError for a chain without a
        pool, PoolExhausted when no address is free, TimeoutError if the view lags)."""
        pool = self.pool(chain)
        fields.account_id(account_id)  # not the engine's own (suspense, operator, ...)
        with self.lock:
            for _ in range(ATTEMPTS):
                self.caught_up()
                now = datetime.now(UTC)
                now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the wire's ms
                with self.view.lock:
                    try:
                        address, already = pool.pick(account_id, epoch_ms(now) or 0)
                    except ValueError as error:
                        raise PoolExhausted(str(error)) from None
                    if already:
                        return self.bound(pool, address, False)
                expires = now + timedelta(seconds=pool.config.binding_seconds)
                record = {
                    "chain": pool.config.chain,
                    "address": address,
                    "account_id": account_id,
                    "bound_at": now,
                    "expires_at": expires,
                    "actor": actor,
                }
                operator_records.publish(self.producer, self.prefix, self.codec,
                                         catalogue.ADDRESS_BINDINGS, f"{chain}:{address}",
                                         record)  # fmt: skip
                self.caught_up()
                ours = Binding(account_id, epoch_ms(now) or 0, epoch_ms(expires))
                with self.view.lock:
                    history = pool.bindings.history_of(address)
                    if history and history[-1] == ours:
                        return self.bound(pool, address, True)
        raise PoolExhausted(f"{chain}: {ATTEMPTS} addresses taken by other binders meanwhile")

    def caught_up(self) -> None:
        if not self.view.wait_caught_up(30.0):
            raise TimeoutError("the address-bindings view did not catch up in 30 s")

    @staticmethod
    def bound(pool: Pool, address: str, new: bool) -> BoundAddress:
        binding = pool.bindings.history_of(address)[-1]
        return BoundAddress(
            pool.config.chain,
            address,
            binding.account_id,
            datetime.fromtimestamp(binding.bound_ms / 1000, UTC),
            datetime.fromtimestamp((binding.expires_ms or 0) / 1000, UTC),
            pool.index(address) or 0,
            new,
        )
