"""The Ethereum sweeper (the funnel): ETH at the pool's deposit addresses moved to the hot
wallet, or to the cold wallet what would fill the hot one above its `max_balance`.

Owns deciding and sending sweeps of native ETH. A pool address (`core.address_pool`: the
sweeper derives its key from the account's extended private key, a secret that must match
the configured xpub) is swept when what it holds at the asset's deepest security level
(and still holds now) less the transaction's fee reaches `min_collection_amount`
(`core.wallets`): value not yet confirmed stays until it is. Each sweep is the address's
transaction of one nonce, its id `<chain>:<address>:<nonce>`; it is reported SUBMITTED
(hash, nonce, signed bytes) and acknowledged on sweep-results *before* it is sent, then
CONFIRMED with the fee it paid (the ledger posts that fee, `streams.ledger.sweeps`) or
FAILED (reverted, with its fee; or its nonce taken by another transaction: nothing moved).
A sweep is never sent twice and never lost: after a crash the sweeper finishes every
SUBMITTED sweep, with the very bytes it recorded, before it plans a new one. Nothing is
swept while the breaker is OPEN (globally or for the asset). The fee is exact: a legacy
transaction of 21,000 gas at a price fixed when it is signed, so the address is left
with what arrived after the confirmed block, nothing of what was swept.

ERC20 sweeps (gas first funded from a gas wallet) and Bitcoin consolidation are not built
yet: their deposits stay at their addresses, counted by the wallet reconciliation.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bitcoinlib.keys import HDKey
from confluent_kafka import Producer
from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted, Web3RPCError

from connectors.chain_facts import ChainFacts
from connectors.ethereum import CHAIN, batch_quantities, transaction_known
from core import ids
from core.address_pool import PoolConfig, derive
from core.assets import AssetCatalogue
from core.config import Settings
from core.fields import TREASURY_ACCOUNT
from core.reasons import Reason
from core.wallets import ChainWallets
from topics import catalogue
from topics.authentication import signing_producer
from topics.codec import Codec
from topics.kafka import flush
from topics.view import TopicView

log = logging.getLogger(__name__)

NATIVE_GAS = 21_000
POLL_S = 2.0
RECEIPT_WAIT_S = 30.0
MAX_DETAIL = 500


class SweeperConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SweeperWiring:
    bootstrap: str
    prefix: str
    codec: Codec
    producer: Producer
    assets: AssetCatalogue

    @classmethod
    def from_settings(cls, settings: Settings, codec: Codec, assets: AssetCatalogue):
        if not settings.kafka:
            raise ValueError("the sweeper needs a broker (TOKENGINE_KAFKA)")
        producer = signing_producer(settings, catalogue.CONNECTORS)
        return cls(settings.kafka, settings.topic_prefix, codec, producer, assets)


@dataclass(frozen=True)
class Plan:
    """One sweep to make: from a pool address (its index) to an operator wallet."""

    address: str
    index: int
    units: int  # wei moved
    to: str
    to_role: str  # HOT or COLD


@dataclass
class SweepFacts:
    """What the sweeper reads from topics: its sweeps' newest results, the bindings (the
    pool grows with them), the breaker states."""

    chain: ChainFacts
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.SWEEP_RESULTS:
            current = self.results.get(value["sweep_id"])
            if current is None or current["status"] == "SUBMITTED":
                self.results[value["sweep_id"]] = value
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
        self.pool = pool
        if self.address(0) != derive(pool, 0):
            raise SweeperConfigError("the extended private key is not the pool's xpub's")

    def key(self, index: int) -> bytes:
        return self.external.child_private(index).private_byte

    def address(self, index: int) -> str:
        return Account.from_key(self.key(index)).address


class EthereumSweeper:
    chain = CHAIN

    def __init__(self, wiring: SweeperWiring, rpc_url: str, xprv: str, hot: str) -> None:
        pool = wiring.assets.pools.get(CHAIN)
        self.asset = wiring.assets.native(CHAIN)
        if pool is None or self.asset is None:
            raise SweeperConfigError("sweeps need [pools.ethereum] and the ETH asset")
        self.keys = PoolKeys(pool, xprv)
        self.wallets = wiring.assets.wallets.get(CHAIN, ChainWallets(CHAIN))
        self.hot = Web3.to_checksum_address(hot)
        self.prefix, self.codec, self.producer = wiring.prefix, wiring.codec, wiring.producer
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        facts = ChainFacts(CHAIN, str.lower, pool=pool)
        self.facts = SweepFacts(facts)
        self.view = TopicView(
            wiring.bootstrap,
            wiring.prefix,
            wiring.codec,
            wiring.producer.auth,
            [catalogue.SWEEP_RESULTS, catalogue.ADDRESS_BINDINGS, catalogue.BREAKER_STATE],
            self.facts.fold,
            name="eth-sweeper",
            partitions={catalogue.BREAKER_STATE: 1},
        )
        self.stopping = threading.Event()
        self.swept = 0  # sweeps this process confirmed

    def run(self) -> None:
        self.view.start()
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                except (OSError, Web3RPCError) as error:  # the node: asked again later
                    log.warning("sweeper: %s; trying again", error)
                self.stopping.wait(POLL_S)
        finally:
            self.view.stop()

    def stop(self) -> None:
        self.stopping.set()

    def halted(self) -> bool:
        with self.view.lock:
            states = (
                self.facts.breakers.get("global"),
                self.facts.breakers.get(f"asset:{self.asset.code}"),
            )
        return "OPEN" in states

    def step(self) -> None:
        """Finish every recorded sweep, then sweep what the addresses hold now."""
        self.view.wait_caught_up()
        if self.halted():
            return
        with self.view.lock:
            unfinished = self.facts.open_sweeps()
        for result in unfinished:
            if not self.complete(result):
                return  # not mined yet: nothing new is planned before it is
        for plan in self.plans():
            if self.stopping.is_set() or self.halted():
                return
            self.complete(self.send(self.record(plan)))

    # -- deciding ------------------------------------------------------------------------

    def plans(self) -> list[Plan]:
        """What to sweep now: each pool address's confirmed value less the fee, to the hot
        wallet while it stays at or below `max_balance`, else to the cold wallet."""
        with self.view.lock:
            pool = self.facts.chain.pool
            addresses = [] if pool is None else pool.addresses()
        head = self.w3.eth.block_number
        confirmed = max(0, head - self.asset.max_confirmations + 1)
        calls = [("eth_getBalance", [a, hex(b)]) for b in (confirmed, head) for a in addresses]
        held = batch_quantities(self.w3, calls, head)
        fee = NATIVE_GAS * self.gas_price()
        limits = self.wallets.limits_of(self.asset.code)
        least = max(1, int(limits.min_collection_amount.scaleb(self.asset.decimals)))
        room = None
        if limits.max_balance is not None and self.wallets.cold is not None:
            top = int(limits.max_balance.scaleb(self.asset.decimals))
            room = top - self.w3.eth.get_balance(self.hot, "latest")
        plans = []
        for index, address in enumerate(addresses):
            units = min(held[index], held[len(addresses) + index]) - fee
            if units < least:
                continue
            if room is None or units <= room:
                plans.append(Plan(address, index, units, self.hot, "HOT"))
                room = None if room is None else room - units
            else:
                cold = Web3.to_checksum_address(self.wallets.cold)
                plans.append(Plan(address, index, units, cold, "COLD"))
        return plans

    def gas_price(self) -> int:
        return self.w3.eth.gas_price * 2

    # -- sending -------------------------------------------------------------------------

    def record(self, plan: Plan) -> dict[str, Any]:
        """Sign the sweep and report it SUBMITTED, acknowledged, before anything is sent."""
        nonce = self.w3.eth.get_transaction_count(plan.address, "pending")
        transaction = {
            "nonce": nonce,
            "chainId": self.w3.eth.chain_id,
            "gasPrice": self.gas_price(),
            "gas": NATIVE_GAS,
            "to": plan.to,
            "value": plan.units,
        }
        signed = Account.sign_transaction(transaction, self.keys.key(plan.index))
        result = {
            "sweep_id": ids.sweep_id(CHAIN, plan.address, nonce),
            "chain": CHAIN,
            "asset": self.asset.code,
            "from_address": plan.address,
            "to_address": plan.to,
            "to_role": plan.to_role,
            "amount": Decimal(plan.units).scaleb(-self.asset.decimals),
            "status": "SUBMITTED",
            "tx_hash": signed.hash.to_0x_hex(),
            "nonce": nonce,
            "raw_transaction": signed.raw_transaction.to_0x_hex(),
            "network_fee": None,
            "network_fee_asset": self.asset.code,
            "reason": None,
            "detail": None,
            "reported_at": datetime.now(UTC),
        }
        self.report(result)
        return result

    def send(self, result: dict[str, Any]) -> dict[str, Any]:
        """Send the recorded bytes (a node that had them already is no error)."""
        try:
            self.w3.eth.send_raw_transaction(result["raw_transaction"])
        except Web3RPCError as error:
            if not self.on_chain(result["tx_hash"]):
                log.warning("sweep %s not accepted: %s", result["sweep_id"], error)
        return result

    def complete(self, result: dict[str, Any]) -> bool:
        """Report a recorded sweep's outcome once it has one (True); False while it is not
        mined yet. Its bytes are sent again if the node lost them; FAILED only when
        nothing can move: another transaction took its nonce, or it reverted."""
        tx_hash = result["tx_hash"]
        if not self.on_chain(tx_hash):
            if self.nonce_taken(result):
                self.report({**result, "status": "FAILED", "reason": Reason.NONCE_TAKEN})
                return True
            self.send(result)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, RECEIPT_WAIT_S)
        except TimeExhausted:
            log.warning("sweep %s not mined yet; still waiting", result["sweep_id"])
            return False
        fee = Decimal(receipt["gasUsed"] * receipt["effectiveGasPrice"]).scaleb(-18)
        if receipt["status"] != 1:
            self.report({**result, "status": "FAILED", "reason": Reason.REVERTED,
                         "network_fee": fee})  # fmt: skip
            return True
        self.report({**result, "status": "CONFIRMED", "network_fee": fee})
        self.swept += 1
        return True

    def nonce_taken(self, result: dict[str, Any]) -> bool:
        mined = self.w3.eth.get_transaction_count(result["from_address"], "latest")
        return mined > result["nonce"] and not self.on_chain(result["tx_hash"])

    def on_chain(self, tx_hash: str) -> bool:
        return transaction_known(self.w3, tx_hash)

    def report(self, result: dict[str, Any]) -> None:
        """Publish a result, acknowledged before the sweeper goes on."""
        result = {**result, "reported_at": datetime.now(UTC)}
        if result["detail"] is not None:
            result["detail"] = str(result["detail"])[:MAX_DETAIL]
        self.producer.produce(
            self.prefix + catalogue.SWEEP_RESULTS,
            self.codec.encode(catalogue.SWEEP_RESULTS, result),
            TREASURY_ACCOUNT.encode(),
        )
        flush(self.producer, "a sweep result")
        with self.view.lock:
            self.facts.fold(catalogue.SWEEP_RESULTS, result)
        log.info(
            "sweep %s: %s %s %s to %s wallet %s",
            *(result[k] for k in ("sweep_id", "status", "amount", "asset", "to_role")),
            result["to_address"],
        )
