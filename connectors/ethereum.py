"""The Ethereum watcher: ETH and ERC20 transfers to deposit addresses, as observations.

Owns following the chain: from its saved position it reads each new block (native
transfers in its transactions, ERC20 `Transfer` logs of the configured contracts), keeps
every deposit to a bound address (address-bindings, chain `ethereum`) under watch, and
publishes a `ChainObservation` per deposit: SEEN while confirmations grow, CONFIRMED once
they reach the deposit's security level (`connectors.confirmations`), REMOVED when a
reorg takes its block away. Deposit ids are (chain, tx hash, log index; 0 for a native
transfer), so a republished observation is the same deposit to the ledger.

Position, recent block hashes and the deposits under watch are saved to a state file
after each step (written atomically), so a restart resumes without a gap; what it
republishes after a crash is a duplicate the ledger ignores. A node that does not answer
is retried with backoff (logged and counted), never a crash loop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from prometheus_client import Counter, Gauge
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from connectors.confirmations import Price, confirmations_required
from tokengine.assets import Asset, AssetCatalogue
from topics import catalogue
from topics.codec import Codec
from topics.view import TopicView

log = logging.getLogger(__name__)

CHAIN = "ethereum"
TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix(
    "0x"
)
REORG_WINDOW = 64  # block hashes kept to find a fork point
MAX_BLOCKS_PER_STEP = 500
POLL_INTERVAL_S = 0.5
MAX_BACKOFF_S = 30.0

blocks_processed = Counter("token_engine_eth_blocks", "Ethereum blocks read by the watcher.")
node_errors = Counter("token_engine_eth_node_errors", "Failed calls to the Ethereum node.")
watcher_head = Gauge("token_engine_eth_watcher_block", "Last Ethereum block the watcher read.")


@dataclass
class Tracked:
    """A deposit under watch, until it is final (confirmed and past the reorg depth)."""

    deposit_id: str
    asset: str
    tx_hash: str
    output_index: int
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    account_id: str
    amount: str  # Decimal as text (the state file is JSON)
    confirmed: bool = False
    last_confirmations: int = -1


@dataclass
class WatcherState:
    last_block: int
    hashes: dict[str, str]  # block number (text) -> hash
    tracked: dict[str, Tracked]

    @classmethod
    def load(cls, path: Path, start_block: int) -> WatcherState:
        if not path.exists():
            return cls(start_block - 1, {}, {})
        data = json.loads(path.read_text())
        tracked = {k: Tracked(**v) for k, v in data["tracked"].items()}
        return cls(data["last_block"], data["hashes"], tracked)

    def save(self, path: Path) -> None:
        data = {
            "last_block": self.last_block,
            "hashes": self.hashes,
            "tracked": {k: asdict(v) for k, v in self.tracked.items()},
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)


class ChainFacts:
    """What the watcher reads from topics: deposit addresses and USD prices."""

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}  # lower-case address -> account id
        self.prices: dict[str, Price] = {}

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.ADDRESS_BINDINGS and value["chain"] == CHAIN:
            self.addresses[value["address"].lower()] = value["account_id"]
        elif topic == catalogue.PRICES:
            self.prices[value["asset"]] = Price(value["usd_price"], value["as_of"])


class EthereumWatcher:
    def __init__(
        self,
        rpc_url: str,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        producer: Producer,
        assets: AssetCatalogue,
        state_path: Path,
        start_block: int = 0,
    ) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.prefix = prefix
        self.codec = codec
        self.producer = producer
        self.assets = [a for a in assets.assets.values() if a.chain == CHAIN]
        self.native = next((a for a in self.assets if not a.contract), None)
        self.tokens = {a.contract.lower(): a for a in self.assets if a.contract}
        self.state_path = state_path
        self.state = WatcherState.load(state_path, start_block)
        self.facts = ChainFacts()
        self.view = TopicView(
            bootstrap,
            prefix,
            codec,
            [catalogue.ADDRESS_BINDINGS, catalogue.PRICES],
            self.facts.fold,
            name="eth-watcher",
        )
        self.stopping = threading.Event()
        self.published = 0

    def run(self) -> None:
        self.view.start()
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                try:
                    progressed = self.step()
                    backoff = 1.0
                except (OSError, ValueError) as error:  # node down, timeouts, bad answers
                    node_errors.inc()
                    log.warning("ethereum node: %s; retrying in %.0f s", error, backoff)
                    self.stopping.wait(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
                    continue
                if not progressed:
                    self.stopping.wait(POLL_INTERVAL_S)
        finally:
            self.view.stop()

    def stop(self) -> None:
        self.stopping.set()

    # -- one step: reorgs, new blocks, confirmations ------------------------------------

    def step(self) -> bool:
        self.view.wait_caught_up()
        head = self.w3.eth.block_number
        self.handle_reorg()
        last = min(head, self.state.last_block + MAX_BLOCKS_PER_STEP)
        for number in range(self.state.last_block + 1, last + 1):
            self.read_block(number)
        progressed = last > self.state.last_block
        self.state.last_block = max(self.state.last_block, last)
        self.publish_confirmations(head)
        if self.producer.flush(30) != 0:
            raise OSError("observations not acknowledged by the broker")
        self.state.save(self.state_path)
        watcher_head.set(self.state.last_block)
        return progressed

    def handle_reorg(self) -> None:
        """Find the fork point below our position; deposits above it are checked again."""
        last = self.state.last_block
        fork = last
        while (
            str(fork) in self.state.hashes and self.block_hash(fork) != self.state.hashes[str(fork)]
        ):
            fork -= 1
        if fork == last:
            return
        log.warning("reorg: blocks above %d changed", fork)
        for number in [n for n in self.state.hashes if int(n) > fork]:
            del self.state.hashes[number]
        for deposit_id, tracked in list(self.state.tracked.items()):
            if tracked.block_number > fork and not self.still_included(tracked):
                self.publish(tracked, "REMOVED", 0, 0)
                del self.state.tracked[deposit_id]
        self.state.last_block = fork  # rescanned: a transaction mined again is found again

    def block_hash(self, number: int) -> str | None:
        try:
            return self.w3.eth.get_block(number)["hash"].to_0x_hex()
        except BlockNotFound:  # the chain got shorter
            return None

    def still_included(self, tracked: Tracked) -> bool:
        try:
            receipt = self.w3.eth.get_transaction_receipt(tracked.tx_hash)
        except TransactionNotFound:
            return False
        return receipt["blockHash"].to_0x_hex() == tracked.block_hash

    def read_block(self, number: int) -> None:
        block = self.w3.eth.get_block(number, full_transactions=True)
        block_hash = block["hash"].to_0x_hex()
        self.state.hashes[str(number)] = block_hash
        for old in [n for n in self.state.hashes if int(n) <= number - REORG_WINDOW]:
            del self.state.hashes[old]
        if self.native is not None:
            for tx in block["transactions"]:
                to = (tx.get("to") or "").lower()
                if tx["value"] > 0 and to in self.facts.addresses:
                    self.track(
                        self.native,
                        tx["hash"].to_0x_hex(),
                        0,
                        number,
                        block_hash,
                        tx["from"],
                        to,
                        tx["value"],
                    )
        if self.tokens:
            logs = self.w3.eth.get_logs(
                {
                    "fromBlock": number,
                    "toBlock": number,
                    "address": [Web3.to_checksum_address(c) for c in self.tokens],
                    "topics": [TRANSFER_TOPIC],
                }
            )
            for entry in logs:
                to = "0x" + entry["topics"][2].hex()[-40:]
                if to.lower() not in self.facts.addresses:
                    continue
                asset = self.tokens[entry["address"].lower()]
                sender = "0x" + entry["topics"][1].hex()[-40:]
                value = int.from_bytes(bytes(entry["data"]), "big")
                self.track(
                    asset,
                    entry["transactionHash"].to_0x_hex(),
                    entry["logIndex"],
                    number,
                    block_hash,
                    sender,
                    to.lower(),
                    value,
                )
        blocks_processed.inc()

    def track(self, asset: Asset, tx_hash, index, number, block_hash, sender, to, units) -> None:
        deposit_id = f"{CHAIN}:{tx_hash.lower()}:{index}"
        amount = Decimal(units).scaleb(-asset.decimals)
        self.state.tracked[deposit_id] = Tracked(
            deposit_id,
            asset.code,
            tx_hash,
            index,
            number,
            block_hash,
            sender.lower(),
            to,
            self.facts.addresses[to.lower()],
            str(amount),
        )

    def publish_confirmations(self, head: int) -> None:
        now = datetime.now(UTC)
        for deposit_id, tracked in list(self.state.tracked.items()):
            asset = next(a for a in self.assets if a.code == tracked.asset)
            confirmations = max(0, head - tracked.block_number + 1)
            required = confirmations_required(
                asset, Decimal(tracked.amount), self.facts.prices.get(asset.code), now
            )
            if not tracked.confirmed and confirmations != tracked.last_confirmations:
                status = "CONFIRMED" if confirmations >= required else "SEEN"
                self.publish(tracked, status, confirmations, required)
                tracked.confirmed = status == "CONFIRMED"
                tracked.last_confirmations = confirmations
            if tracked.confirmed and confirmations > asset.max_confirmations + REORG_WINDOW // 2:
                del self.state.tracked[deposit_id]  # final: no reorg that deep is expected

    def publish(self, tracked: Tracked, status: str, confirmations: int, required: int) -> None:
        observation = {
            "observation_id": f"{tracked.deposit_id}:{tracked.block_hash}:{status}:{confirmations}",
            "deposit_id": tracked.deposit_id,
            "chain": CHAIN,
            "asset": tracked.asset,
            "tx_hash": tracked.tx_hash,
            "output_index": tracked.output_index,
            "block_number": tracked.block_number,
            "block_hash": tracked.block_hash,
            "from_address": tracked.from_address,
            "to_address": tracked.to_address,
            "account_id": tracked.account_id,
            "amount": Decimal(tracked.amount),
            "confirmations": confirmations,
            "confirmations_required": required,
            "status": status,
            "observed_at": datetime.now(UTC),
        }
        self.producer.produce(
            self.prefix + catalogue.CHAIN_OBSERVATIONS,
            self.codec.encode(catalogue.CHAIN_OBSERVATIONS, observation),
            tracked.account_id.encode(),
        )
        self.published += 1
