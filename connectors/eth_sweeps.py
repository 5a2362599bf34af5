"""The Ethereum sweeper (the funnel): ETH at the pool's deposit addresses moved to the hot
wallet, or to the cold wallet what would fill the hot one above its `max_balance`.

Owns deciding and sending sweeps of native ETH. A pool address (`core.address_pool`: the
sweeper derives its key from the account's extended private key, a secret that must match
the configured xpub; `connectors.sweep_records`) is swept when what it holds at the
asset's deepest security level (and still holds now, having sent nothing since) less the
transaction's fee reaches `min_collection_amount` (`core.wallets`): value not yet confirmed
stays until it is. The fee is the gas the node estimates for the destination (21,000 for
an address with no code) at a price fixed when the sweep is planned: the address keeps
what arrived after the confirmed block and the gas a contract destination did not use.

A sweep is one signed transaction of the address (id `<chain>:<address>:<nonce>:<hash>`).
It is reported SUBMITTED (hash, nonce, signed bytes) and acknowledged on sweep-results
*before* it is sent, then CONFIRMED with the fee it paid once its block is as deep as a
deposit's deepest level (the ledger posts that fee, `streams.ledger.sweeps`), or FAILED:
reverted, with its fee (alert `sweep.reverted`; the address is not swept again), or
refused by the node or its nonce taken by another transaction (nothing moved; the next
sweep of the address takes the same nonce, so at most one of them is ever mined). Never
sent twice, never lost: after a crash the sweeper finishes every SUBMITTED sweep with the
very bytes it recorded, and plans nothing before the recorded sweeps and the breaker are
read to their end and every open sweep is in a block. Nothing is swept while the breaker
is OPEN (globally or for the asset). No step's failure stops the sweeper: it is logged and
the next step tries again.

ERC20 sweeps (gas first funded from a gas wallet) and Bitcoin consolidation are not built
yet: their deposits stay at their addresses, counted by the wallet reconciliation.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer
from eth_account import Account
from prometheus_client import Counter, Gauge
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from connectors.chain_facts import ChainFacts
from connectors.ethereum import CHAIN, NATIVE_GAS, batch_quantities, transaction_known
from connectors.sweep_records import Plan, PoolKeys, SweeperConfigError, SweepFacts
from core import ids
from core.assets import AssetCatalogue
from core.config import Settings
from core.fields import TREASURY_ACCOUNT
from core.reasons import Reason
from core.wallets import ChainWallets
from topics import catalogue
from topics.alerts import alert
from topics.authentication import signing_producer
from topics.codec import Codec
from topics.kafka import flush
from topics.view import TopicView

log = logging.getLogger(__name__)

POLL_S = 2.0
RECEIPT_WAIT_S = 30.0
REFUSED_WAIT_S = 60.0  # an address whose sweep the node refused is planned again after this
MAX_DETAIL = 500
DONE, MINED, UNMINED = "done", "mined", "unmined"  # what `complete` found

sweeps_reported = Counter(
    "token_engine_sweeps",
    "Sweep results reported, per chain, destination (HOT, COLD) and status.",
    ["chain", "destination", "status"],
)
sweep_backlog = Gauge(
    "token_engine_sweep_backlog",
    "Deposit addresses holding a confirmed amount to sweep at the last pass, per chain.",
    ["chain"],
)
sweeps_open = Gauge(
    "token_engine_sweeps_open", "Sweeps recorded and not yet final, per chain.", ["chain"]
)


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
        self.facts = SweepFacts(ChainFacts(CHAIN, str.lower, pool=pool))
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
        self.refused: dict[str, float] = {}  # address (lower) -> when the node refused one

    def run(self) -> None:
        self.view.start()
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                except Exception:  # the node, an answer it cannot read: asked again later
                    log.exception("sweeper step failed; trying again")
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
        """Finish every recorded sweep, then sweep what the addresses hold now; nothing
        before the recorded sweeps and the breaker are read to their end."""
        if not self.view.wait_caught_up():
            log.warning("sweep results not read to their end; nothing swept this time")
            return
        if self.halted():
            return
        with self.view.lock:
            unfinished = self.facts.open_sweeps()
        sweeps_open.labels(CHAIN).set(len(unfinished))
        outcomes = [self.complete(result) for result in unfinished]
        if UNMINED in outcomes:
            return  # a sweep in no block yet: the hot wallet's balance would be misread
        with self.view.lock:
            busy = {r["from_address"].lower() for r in self.facts.open_sweeps()}
            busy |= self.facts.reverted
        now = time.monotonic()
        busy |= {a for a, at in self.refused.items() if now - at < REFUSED_WAIT_S}
        plans = self.plans(busy)
        sweep_backlog.labels(CHAIN).set(len(plans))
        for plan in plans:
            if self.stopping.is_set() or self.halted():
                return
            result = self.record(plan)
            if self.send(result) and self.complete(result) == UNMINED:
                return

    # -- deciding ------------------------------------------------------------------------

    def plans(self, busy: set[str] = frozenset()) -> list[Plan]:
        """What to sweep now: each pool address's confirmed value less the fee, to the hot
        wallet while it stays at or below `max_balance`, else to the cold wallet. An
        address is left alone while a sweep of it is open or reverted once, and when it
        sent anything since the confirmed block (its value there is not what it holds)."""
        with self.view.lock:
            pool = self.facts.chain.pool
            addresses = [] if pool is None else pool.addresses()
        head = self.w3.eth.block_number
        confirmed = max(0, head - self.asset.max_confirmations + 1)
        calls = [
            (method, [address, hex(block)])
            for method in ("eth_getBalance", "eth_getTransactionCount")
            for block in (confirmed, head)
            for address in addresses
        ]
        answers = batch_quantities(self.w3, calls, head)
        n = len(addresses)
        held_then, held_now, sent_then, sent_now = (answers[i * n : (i + 1) * n] for i in range(4))
        gas_price = self.w3.eth.gas_price * 2
        limits = self.wallets.limits_of(self.asset.code)
        least = max(1, int(limits.min_collection_amount.scaleb(self.asset.decimals)))
        room = None
        if limits.max_balance is not None and self.wallets.cold is not None:
            top = int(limits.max_balance.scaleb(self.asset.decimals))
            room = top - self.w3.eth.get_balance(self.hot, "latest")
        gas: dict[str, int | None] = {}
        plans = []
        for index, address in enumerate(addresses):
            if address.lower() in busy or sent_then[index] != sent_now[index]:
                continue
            held = min(held_then[index], held_now[index])
            if held - NATIVE_GAS * gas_price < least:
                continue  # too little even to the cheapest destination
            fits = room is None or held <= room
            to, role = (self.hot, "HOT") if fits else (self.cold_address(), "COLD")
            if to not in gas:
                gas[to] = self.gas_to(address, to, role)
            if gas[to] is None:
                continue
            units = held - gas[to] * gas_price
            if units < least:
                continue
            plans.append(Plan(address, index, units, to, role, gas[to], gas_price))
            if room is not None and fits:
                room -= units
        return plans

    def gas_to(self, address: str, to: str, role: str) -> int | None:
        """The gas a transfer to `to` needs, as the node estimates it; None (logged: nothing
        is sent that way this pass) when the node says it would fail, such as a contract
        that refuses ETH."""
        try:
            return self.w3.eth.estimate_gas({"from": address, "to": to, "value": 1})
        except (Web3RPCError, ContractLogicError) as error:
            log.error("sweeps to the %s wallet %s would fail: %s", role.lower(), to, error)
            return None

    def cold_address(self) -> str:
        return Web3.to_checksum_address(self.wallets.cold)

    # -- sending -------------------------------------------------------------------------

    def record(self, plan: Plan) -> dict[str, Any]:
        """Sign the sweep and report it SUBMITTED, acknowledged, before anything is sent."""
        nonce = self.w3.eth.get_transaction_count(plan.address, "pending")
        transaction = {
            "nonce": nonce,
            "chainId": self.w3.eth.chain_id,
            "gasPrice": plan.gas_price,
            "gas": plan.gas,
            "to": plan.to,
            "value": plan.units,
        }
        signed = Account.sign_transaction(transaction, self.keys.key(plan.index))
        tx_hash = signed.hash.to_0x_hex()
        result = {
            "sweep_id": ids.sweep_id(CHAIN, plan.address, nonce, tx_hash),
            "chain": CHAIN,
            "asset": self.asset.code,
            "from_address": plan.address,
            "to_address": plan.to,
            "to_role": plan.to_role,
            "amount": Decimal(plan.units).scaleb(-self.asset.decimals),
            "status": "SUBMITTED",
            "tx_hash": tx_hash,
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

    def send(self, result: dict[str, Any]) -> bool:
        """Send the recorded bytes; False once FAILED is reported (the node refused them
        and has no transaction of their nonce: nothing moved, and a new sweep takes the
        same nonce, so at most one of the two can ever be mined)."""
        try:
            self.w3.eth.send_raw_transaction(result["raw_transaction"])
            return True
        except Web3RPCError as error:
            if self.known(result["tx_hash"]):
                return True  # it had them already
            reason = Reason.NONCE_TAKEN if self.nonce_taken(result) else Reason.REJECTED_BY_NODE
            self.refused[result["from_address"].lower()] = time.monotonic()
            self.report({**result, "status": "FAILED", "reason": reason, "detail": error})
            return False

    def complete(self, result: dict[str, Any]) -> str:
        """DONE once a recorded sweep's outcome is reported: CONFIRMED (or FAILED if it
        reverted) when its block is as deep as a deposit's deepest security level (a
        reorg before that only sends it again); MINED while it is not that deep; UNMINED
        while it is in no block. Its bytes are sent again if the node lost them."""
        tx_hash = result["tx_hash"]
        if not self.known(tx_hash):
            if self.nonce_taken(result):
                self.report({**result, "status": "FAILED", "reason": Reason.NONCE_TAKEN})
                return DONE
            if not self.send(result):
                return DONE
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, RECEIPT_WAIT_S)
        except TimeExhausted:
            log.warning("sweep %s not mined yet; still waiting", result["sweep_id"])
            return UNMINED
        depth = self.w3.eth.block_number - receipt["blockNumber"] + 1
        if depth < self.asset.max_confirmations:
            return MINED
        fee = Decimal(receipt["gasUsed"] * receipt["effectiveGasPrice"]).scaleb(-18)
        if receipt["status"] != 1:
            self.report({**result, "status": "FAILED", "reason": Reason.REVERTED,
                         "network_fee": fee})  # fmt: skip
            self.alert_reverted(result)
            return DONE
        self.report({**result, "status": "CONFIRMED", "network_fee": fee})
        self.swept += 1
        return DONE

    def known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction, mined (by its receipt: a node may have
        pruned its index of old transactions) or pending."""
        try:
            self.w3.eth.get_transaction_receipt(tx_hash)
            return True
        except TransactionNotFound:
            return transaction_known(self.w3, tx_hash)

    def nonce_taken(self, result: dict[str, Any]) -> bool:
        """Whether a mined transaction of the address that is not this one has its nonce."""
        mined = self.w3.eth.get_transaction_count(result["from_address"], "latest")
        return mined > result["nonce"] and not self.known(result["tx_hash"])

    def alert_reverted(self, result: dict[str, Any]) -> None:
        """A reverted sweep burnt its fee and would again: the address is not swept again."""
        message = (
            f"sweep {result['sweep_id']} ({result['tx_hash']}) to {result['to_role'].lower()} "
            f"wallet {result['to_address']} reverted; {result['from_address']} is not swept "
            "again until an operator looks at it"
        )
        log.critical(message)
        raised = alert(
            "sweep.reverted",
            "CRITICAL",
            message,
            raised_by=result["sweep_id"],
            raised_at=datetime.now(UTC),
            details={"tx_hash": result["tx_hash"]},
        )
        self.producer.produce(
            self.prefix + catalogue.ALERTS,
            self.codec.encode(catalogue.ALERTS, raised),
            raised["kind"].encode(),
        )
        flush(self.producer, "a sweep alert")

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
        sweeps_reported.labels(CHAIN, result["to_role"], result["status"]).inc()
        with self.view.lock:
            self.facts.fold(catalogue.SWEEP_RESULTS, result)
        log.info(
            "sweep %s: %s %s %s to %s wallet %s",
            *(result[k] for k in ("sweep_id", "status", "amount", "asset", "to_role")),
            result["to_address"],
        )
