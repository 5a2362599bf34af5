"""What every chain watcher shares: position, deposits under watch, reorgs, publishing.

Owns the chain-independent part of a watcher: the saved state (`connectors.watcher_state`,
written after each step, so a restart resumes without a gap; the account each deposit was
attributed to is the one bound at its block's time, `connectors.chain_facts`, kept if a
reorg moves the deposit to a block of another time; a transfer into a hot or cold wallet
from outside the operator's wallets is the treasury's, the operator's capital), one step (reorg
check, new blocks, confirmations), the security level of each deposit
(`connectors.confirmations`), and the `ChainObservation` it publishes: SEEN while
confirmations grow, CONFIRMED at the level, REMOVED when a reorg takes the deposit's block
away. It also publishes a `WalletOutflow` for every transaction in a block that takes value
out of an operator wallet (a hot wallet the payout executors spend from, the cold wallet
of `[wallets.<chain>]`, or a deposit address, bound or in the pool): reconciliation
matches each with what the engine prepared (`streams.reconciliation.wallets`), and after
each step that read new blocks a `WalletBalance` per asset: what all its operator wallets
hold at the last block read (`connectors.wallet_balances`). A chain supplies `head`,
`block_hash`, `read_block`, `still_included` and `holdings` (`connectors.ethereum`,
`connectors.bitcoin`). A node that does not answer is retried with backoff (logged and
counted), never a crash loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Producer
from prometheus_client import Counter, Gauge

from connectors import wallet_balances, wallet_outflows
from connectors.chain_facts import ChainFacts
from connectors.confirmations import confirmations_required
from connectors.watcher_state import Tracked, WatcherState
from core import observations
from core.assets import Asset, AssetCatalogue
from core.config import Settings
from core.fields import TREASURY_ACCOUNT
from core.money import MAX_AMOUNT
from topics import catalogue
from topics.authentication import signing_producer
from topics.codec import Codec
from topics.kafka import flush
from topics.view import TopicView

log = logging.getLogger(__name__)

REORG_WINDOW = 64  # block hashes kept to find a fork point
MAX_BLOCKS_PER_STEP = 500
POLL_INTERVAL_S = 0.5
MAX_BACKOFF_S = 30.0

blocks_processed = Counter("token_engine_watcher_blocks", "Blocks read, per chain.", ["chain"])
node_errors = Counter(
    "token_engine_watcher_node_errors", "Failed node calls, per chain.", ["chain"]
)
transfers_ignored = Counter(
    "token_engine_watcher_transfers_ignored",
    "Transfers to deposit addresses not watched (zero value, out of range), per chain.",
    ["chain", "reason"],
)
holdings_skipped = Counter(
    "token_engine_watcher_holdings_skipped",
    "Steps whose wallet balances were not published (node error, block replaced), per chain.",
    ["chain"],
)
watcher_head = Gauge("token_engine_watcher_block", "Last block read, per chain.", ["chain"])


HELD = ("HOT", "COLD")  # the operator's own wallets (a deposit address is a user's)


@dataclass(frozen=True)
class WatcherWiring:
    """What every chain watcher is connected to, and the file that keeps its position."""

    bootstrap: str
    prefix: str
    codec: Codec
    producer: Producer
    assets: AssetCatalogue
    state_path: Path
    start_block: int = 0
    hot_wallets: tuple[str, ...] = ()  # the payout executors' addresses on this chain

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        codec: Codec,
        assets: AssetCatalogue,
        state_file: str,
        start_block: int = 0,
    ) -> WatcherWiring:
        if not settings.kafka:
            raise ValueError("chain watchers need a broker (TOKENGINE_KAFKA)")
        return cls(
            settings.kafka,
            settings.topic_prefix,
            codec,
            signing_producer(settings, catalogue.CONNECTORS),
            assets,
            settings.data_dir / state_file,
            start_block,
        )


class ChainWatcher:
    chain = ""  # set by each chain

    def __init__(self, wiring: WatcherWiring) -> None:
        self.prefix = wiring.prefix
        self.codec = wiring.codec
        self.producer = wiring.producer
        self.assets = {a.code: a for a in wiring.assets.assets.values() if a.chain == self.chain}
        self.state_path = wiring.state_path
        self.state = WatcherState.load(wiring.state_path, wiring.start_block)
        network = next((a.network for a in self.assets.values() if a.network), "")
        pool = wiring.assets.pools.get(self.chain)
        self.facts = ChainFacts(self.chain, self.normalize_address, network, pool)
        self.view = TopicView(
            wiring.bootstrap,
            wiring.prefix,
            wiring.codec,
            wiring.producer.auth,
            [catalogue.ADDRESS_BINDINGS, catalogue.PRICES],
            self.facts.fold,
            name=f"{self.chain}-watcher",
        )
        self.hot_wallets = {self.normalize_address(a) for a in wiring.hot_wallets}
        wallets = wiring.assets.wallets.get(self.chain)
        cold = None if wallets is None else wallets.cold
        self.cold_wallets = set() if cold is None else {self.normalize_address(cold)}
        self.stopping = threading.Event()
        self.published = 0
        self.outflows = 0  # wallet outflows published

    # -- what a chain supplies -----------------------------------------------------------

    @staticmethod
    def normalize_address(address: str) -> str:
        """The form addresses are compared in (Ethereum: lower case)."""
        return address

    def head(self) -> int:
        raise NotImplementedError

    def block_hash(self, number: int) -> str | None:
        """The hash of the block at this height now (None: the chain is shorter)."""
        raise NotImplementedError

    def read_block(self, number: int) -> str:
        """Track the block's deposits to bound addresses; returns the block's hash."""
        raise NotImplementedError

    def still_included(self, tracked: Tracked) -> bool:
        raise NotImplementedError

    def holdings(self, number: int) -> dict[str, tuple[int, int]]:
        """Per asset code: (base units all operator wallets hold at block `number`, how
        many wallets were summed)."""
        raise NotImplementedError

    def operator_wallets(self) -> list[str]:
        """Every operator wallet's address on this chain: hot, cold and deposit addresses."""
        with self.view.lock:
            deposits = self.facts.deposit_addresses()
        own = self.hot_wallets | self.cold_wallets
        return sorted(own | {self.normalize_address(a) for a in deposits})

    def run(self) -> None:
        self.view.start()
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                try:
                    progressed = self.step()
                    backoff = 1.0
                except Exception as error:  # node down, timeouts, answers we cannot read
                    node_errors.labels(self.chain).inc()
                    log.warning("%s node: %s; retrying in %.0f s", self.chain, error, backoff)
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
        head = self.head()
        # after the head: every binding acknowledged before these blocks were mined is
        # folded, so no deposit to a freshly bound address is taken for nobody's (suspense)
        self.view.wait_caught_up()
        self.handle_reorg()
        last = min(head, self.state.last_block + MAX_BLOCKS_PER_STEP)
        for number in range(self.state.last_block + 1, last + 1):
            with self.view.lock:  # the bindings and the pool hold still while a block is read
                self.state.hashes[str(number)] = self.read_block(number)
            for old in [n for n in self.state.hashes if int(n) <= number - REORG_WINDOW]:
                del self.state.hashes[old]
            blocks_processed.labels(self.chain).inc()
        progressed = last > self.state.last_block
        self.state.last_block = max(self.state.last_block, last)
        wallet_outflows.prune(self.state.wallet_outputs, self.state.last_block - REORG_WINDOW)
        for deposit_id, (_, number) in list(self.state.attributed.items()):
            if number < self.state.last_block - 2 * REORG_WINDOW and (
                deposit_id not in self.state.tracked
            ):
                del self.state.attributed[deposit_id]
        self.publish_confirmations(head)
        flush(self.producer, "observations")  # acknowledged before the holdings that count them
        if progressed:
            self.publish_holdings(head)
            flush(self.producer, "wallet balances")
        self.state.save(self.state_path)
        watcher_head.labels(self.chain).set(self.state.last_block)
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
        wallet_outflows.rewind(self.state.wallet_outputs, fork)
        for deposit_id, tracked in list(self.state.tracked.items()):
            if tracked.block_number > fork and not self.still_included(tracked):
                self.publish(tracked, "REMOVED", 0, 0)
                del self.state.tracked[deposit_id]
        self.state.last_block = fork  # rescanned: a transaction mined again is found again

    def track(
        self, asset: Asset, tx_hash, index, block: tuple[int, str, int], sender, to, units
    ) -> None:
        """Watch a transfer to a deposit address, for the account bound at the block's time
        (`block`: number, hash, time in epoch ms). Zero-value transfers (address-poisoning
        spam) are not watched; dust below the minimum is published and refused by intake
        (a dead letter records it); an amount beyond what the wire carries is logged."""
        number, block_hash, block_ms = block
        deposit_id = observations.deposit_id(asset, tx_hash, index)
        if units <= 0 or units >= MAX_AMOUNT.scaleb(asset.decimals):
            transfers_ignored.labels(self.chain, "zero" if units <= 0 else "out_of_range").inc()
            if units > 0:
                log.error(
                    "%s: transfer %s of %s units is beyond range", self.chain, deposit_id, units
                )
            return
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
            self.attribute(deposit_id, to, block_ms, number),
            str(amount),
        )

    def attribute(self, deposit_id: str, to: str, block_ms: int, number: int) -> str:
        """The account bound at the block's time, or the one the deposit had in the block
        a reorg took away: a deposit mined again later is never credited to a second
        account (its first credit's mark is on the first one's record)."""
        first = self.state.attributed.get(deposit_id)
        if first is None:
            holder = TREASURY_ACCOUNT if self.wallet_role(to) in HELD else None
            first = [holder or self.facts.account_at(to, block_ms), number]
            self.state.attributed[deposit_id] = first
        return first[0]

    def receives(self, sender: str, to: str) -> bool:
        """Whether a transfer to `to` is one the ledger credits: to a deposit address
        (its holder's), or to a hot or cold wallet from outside the operator's wallets (the
        operator's capital; one between its own wallets, a sweep, moves nothing it owns)."""
        role = self.wallet_role(to)
        if role in HELD:
            return self.wallet_role(sender) is None
        return role == "DEPOSIT"

    def wallet_role(self, address: str) -> str | None:
        """HOT, COLD or DEPOSIT for an operator wallet's address, None for anyone else's."""
        normal = self.normalize_address(address or "")
        if normal in self.hot_wallets:
            return "HOT"
        if normal in self.cold_wallets:
            return "COLD"
        return "DEPOSIT" if normal and self.facts.watched(normal) else None

    def outflow(
        self, asset: Asset, tx_hash: str, block: tuple[int, str], wallet: str, to: str, units
    ) -> None:
        """Publish that `units` of `asset` left operator wallet `wallet` in `block`."""
        role = self.wallet_role(wallet) or "DEPOSIT"
        record = wallet_outflows.outflow_record(
            self.chain, asset, tx_hash, block, (wallet, role), to, units
        )
        log.info("%s: %s %s left %s wallet %s in %s", self.chain, record["amount"], asset.code,
                 role, wallet, tx_hash)  # fmt: skip
        self.producer.produce(
            self.prefix + catalogue.WALLET_OUTFLOWS,
            self.codec.encode(catalogue.WALLET_OUTFLOWS, record),
            self.chain.encode(),
        )
        self.outflows += 1

    def publish_confirmations(self, head: int) -> None:
        now = datetime.now(UTC)
        for deposit_id, tracked in list(self.state.tracked.items()):
            asset = self.assets[tracked.asset]
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

    def publish_holdings(self, head: int) -> None:
        """Publish what the operator's wallets hold at the last block read, per asset, once
        the observations and outflows of the blocks read are acknowledged (reconciliation,
        reading this record, finds them). Not published when the node cannot say, or when
        the block was replaced while it was read (a reorg: the next step reads again); the
        watcher goes on either way."""
        number = self.state.last_block
        block = (number, self.state.hashes.get(str(number), ""))
        try:
            held = self.holdings(number)
            if self.block_hash(number) != block[1]:
                raise OSError(f"block {number} was replaced while its balances were read")
        except Exception as error:  # node errors, refused batches: the next step tries again
            holdings_skipped.labels(self.chain).inc()
            log.warning("%s: no wallet balances at block %d: %s", self.chain, number, error)
            return
        for code, units in sorted(held.items()):
            asset = self.assets[code]
            unconfirmed = wallet_balances.unconfirmed_units(self.state.tracked.values(), asset)
            record = wallet_balances.balance_record(
                self.chain, asset, block, head, units, unconfirmed
            )
            self.producer.produce(
                self.prefix + catalogue.WALLET_BALANCES,
                self.codec.encode(catalogue.WALLET_BALANCES, record),
                self.chain.encode(),
            )

    def publish(self, tracked: Tracked, status: str, confirmations: int, required: int) -> None:
        observation = {
            "observation_id": f"{tracked.deposit_id}:{tracked.block_hash}:{status}:{confirmations}",
            "deposit_id": tracked.deposit_id,
            "chain": self.chain,
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
