"""`tokengine connectors`: the processes that touch the outside world, in one supervisor.

Starts the Bitcoin watcher (when a Bitcoin node is configured), the Ethereum watcher
(when an Ethereum node is), each chain's payout executor (when its payout key is) and the
Ethereum sweeper (when the pool's extended private key is too: it sweeps to that hot wallet),
each in a thread, until SIGTERM/SIGINT; one that fails stops them all (exit 1: `up`
restarts the process, and each connector resumes from what it recorded). Bank intake
runs inside the workers (HTTP and the drop directory).

The only process that holds the payout and sweep keys and the Bitcoin RPC cookie; its log is
redacted (`core.secrets`) and the HTTP libraries log at WARNING (httpx logs every request).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import replace

from eth_account import Account

from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
from connectors.btc_payouts import BitcoinPayouts, read_payout_key
from connectors.chain_watcher import WatcherWiring
from connectors.eth_payouts import EthereumPayouts
from connectors.eth_sweeps import EthereumSweeper, SweeperWiring
from connectors.ethereum import EthereumWatcher
from connectors.payout_executor import ExecutorWiring
from core.assets import load_assets
from core.config import Settings
from core.secrets import REDACTION, install_log_redaction, read_secret_file, settings_secrets
from topics.codec import make_codec

log = logging.getLogger(__name__)


def payout_key(settings: Settings) -> bytes | None:
    if settings.eth_keystore is None:
        return None
    keystore = json.loads(settings.eth_keystore.read_text())
    key = bytes(Account.decrypt(keystore, settings.eth_keystore_secret()))
    REDACTION.add({key.hex(), "0x" + key.hex()})
    return key


def build_connectors(settings: Settings) -> list:
    """The watchers and the executors; each watcher guards its chain's hot wallet (the
    executor's address) as well as the deposit addresses."""
    if not (settings.kafka and (settings.eth_rpc or settings.btc_rpc)):
        raise ValueError("the connectors need TOKENGINE_KAFKA and a chain node")
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    assets = load_assets(settings.assets_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    running: list = []
    if settings.btc_rpc:
        btc_key = None
        if settings.btc_payout_key_file is not None:
            btc_key = read_payout_key(settings.btc_payout_key_file)
        wiring = WatcherWiring.from_settings(settings, codec, assets, "btc-watcher.json")
        hot = (btc_key.address(),) if btc_key is not None else ()
        running.append(BitcoinWatcher(replace(wiring, hot_wallets=hot), bitcoin_rpc(settings)))
        if btc_key is not None:
            running.append(
                BitcoinPayouts(
                    ExecutorWiring.from_settings(
                        settings, f"{settings.app_id}-btc-payouts", codec, assets
                    ),
                    bitcoin_rpc(settings),
                    btc_key,
                    settings.btc_fee_rate,
                )
            )
    if not settings.eth_rpc:
        return running
    key = payout_key(settings)
    wiring = WatcherWiring.from_settings(
        settings, codec, assets, "eth-watcher.json", settings.eth_start_block
    )
    hot = (Account.from_key(key).address,) if key is not None else ()
    running.append(EthereumWatcher(replace(wiring, hot_wallets=hot), settings.eth_rpc))
    if key is not None:
        wiring = ExecutorWiring.from_settings(
            settings, f"{settings.app_id}-eth-payouts", codec, assets
        )
        running.append(EthereumPayouts(wiring, settings.eth_rpc, key))
    if key is not None and settings.eth_sweep_key_file is not None:
        xprv = read_secret_file(settings.eth_sweep_key_file)
        REDACTION.add({xprv})
        wiring = SweeperWiring.from_settings(settings, codec, assets)
        running.append(EthereumSweeper(wiring, settings.eth_rpc, xprv, hot[0]))
    return running


def bitcoin_rpc(settings: Settings) -> BitcoinRpc:
    return BitcoinRpc(settings.btc_rpc, settings.btc_rpc_cookie_file)


def run_connectors(settings: Settings) -> None:
    """Runs until a signal; exits 1 when a connector fails, so its supervisor restarts all."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    install_log_redaction(settings_secrets(settings), settings.log_level)
    running = build_connectors(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: [connector.stop() for connector in running])
    if run_all(running):
        raise SystemExit(1)


def run_all(running: list) -> list[str]:
    """Each connector in a thread until all stop; the first failure stops the others.

    Returns the names of the connectors that failed.
    """
    failed: list[str] = []

    def run_one(connector) -> None:
        try:
            connector.run()
        except Exception:
            log.exception("%s failed; stopping the connectors", type(connector).__name__)
            failed.append(type(connector).__name__)
            for other in running:
                other.stop()

    threads = [threading.Thread(target=run_one, args=(c,), name=type(c).__name__) for c in running]
    for thread in threads:
        thread.start()
    log.info("connectors running: %s", ", ".join(type(c).__name__ for c in running))
    for thread in threads:
        thread.join()
    return failed
