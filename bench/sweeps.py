"""`python -m bench sweeps`: sweeping 1,000 deposit addresses on anvil, and what it cost.

1,000 pool addresses (derived from an account key made for the run) each hold 0.01 ETH at
the deepest security level; the sweeper's passes record, send and confirm a sweep of each
(through the broker: every SUBMITTED and CONFIRMED result is acknowledged before it goes
on), the hot wallet filled up to its `max_balance` and the rest sent to the cold wallet.
Prints `sweeps addresses=1000 record_send_s=... sweeps_per_s=... confirm_s=...
fees_eth=... fee_per_sweep_eth=... hot=... cold=...`.
"""

from __future__ import annotations

import time
from decimal import Decimal

from bench.common import codec, isolated_settings, report
from core.config import Settings
from tests.conftest import ASSETS_FILE

ADDRESSES = 1_000


def sweeps(settings: Settings) -> None:
    from bitcoinlib.keys import HDKey
    from eth_account import Account
    from web3 import Web3

    from connectors.eth_sweeps import EthereumSweeper, SweeperWiring
    from core.address_pool import PoolConfig, derive
    from core.assets import load_assets
    from tokengine.chain_nodes import start_anvil

    isolated = isolated_settings(settings, "sweeps")
    key = HDKey().subkey_for_path("m/44'/60'/0'")
    cold = Account.create().address
    assets_file = isolated.data_dir / "assets.toml"
    assets_file.write_text(
        ASSETS_FILE.read_text()
        + f'\n[pools.ethereum]\nxpub = "{key.wif_public()}"\nsize = {ADDRESSES}\n'
        f"low_water = 1\nmax_size = {ADDRESSES}\n\n"
        f'[wallets.ethereum]\ncold = "{cold}"\n\n[wallets.ethereum.ETH]\n'
        'max_balance = "4"\nmin_collection_amount = "0.001"\n'
    )
    isolated = isolated.with_overrides(assets_file=assets_file)
    url, anvil = start_anvil(isolated.data_dir)
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        pool = PoolConfig("ethereum", key.wif_public(), size=ADDRESSES, max_size=ADDRESSES)
        for index in range(ADDRESSES):
            w3.eth.send_transaction(
                {"from": w3.eth.accounts[1], "to": derive(pool, index), "value": 10**16}
            )
        assets = load_assets(assets_file)
        for _ in range(assets["ETH"].max_confirmations):
            w3.provider.make_request("evm_mine", [])
        hot = Account.create().address
        wiring = SweeperWiring.from_settings(isolated, codec, assets)
        sweeper = EthereumSweeper(wiring, url, key.wif_private(), hot)
        sweeper.view.start()
        started = time.monotonic()
        sweeper.step()  # records and sends every sweep; each is mined at once (automine)
        record_send_s = time.monotonic() - started
        with sweeper.view.lock:
            recorded = list(sweeper.facts.results.values())
        started = time.monotonic()
        for _ in range(assets["ETH"].max_confirmations):
            w3.provider.make_request("evm_mine", [])
        sweeper.step()  # each now as deep as a deposit's deepest level: CONFIRMED
        confirm_s = time.monotonic() - started
        sweeper.view.stop()
        with sweeper.view.lock:
            final = [r for r in sweeper.facts.results.values() if r["status"] == "CONFIRMED"]
        fees = sum((r["network_fee"] for r in final), Decimal(0))
        report(
            "sweeps",
            addresses=ADDRESSES,
            recorded=len(recorded),
            confirmed=len(final),
            record_send_s=round(record_send_s, 1),
            sweeps_per_s=round(len(recorded) / record_send_s, 1),
            confirm_s=round(confirm_s, 1),
            fees_eth=fees,
            fee_per_sweep_eth=fees / max(1, len(final)),
            hot=Decimal(w3.eth.get_balance(hot)).scaleb(-18),
            cold=Decimal(w3.eth.get_balance(cold)).scaleb(-18),
        )
    finally:
        anvil.stop()
