"""`python -m bench wallets`: one wallet-reconciliation pass over 10,000 deposit addresses.

On anvil: 10,000 addresses bound (every one holding some ETH), then what one balance
record costs: the watcher reading what all of them (and the hot wallet) hold at a block,
in batched JSON-RPC calls (`holdings_s`), and the reconciler placing 10,000 credited
deposits and 1,000 payouts at their blocks (`expected_ms`, pure). Prints
`wallet_reconciliation addresses=10000 holdings_s=... calls_per_s=... expected_ms=...`.
"""

from __future__ import annotations

import time
from decimal import Decimal

from bench.common import codec, isolated_settings, report
from bench.watchers import bind_addresses
from core import ids
from core.config import Settings
from tests.conftest import ASSETS_FILE
from topics import catalogue

ADDRESSES = 10_000
PAYOUTS = 1_000


def wallets(settings: Settings) -> None:
    from eth_account import Account
    from web3 import Web3

    from connectors.chain_watcher import WatcherWiring
    from connectors.ethereum import EthereumWatcher
    from core.assets import load_assets
    from streams.reconciliation.chain_records import ChainRecords, expected_holdings
    from tokengine.chain_nodes import start_anvil

    isolated = isolated_settings(settings, "wallets")
    url, anvil = start_anvil(isolated.data_dir)
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        addresses = [Account.create().address for _ in range(ADDRESSES)]
        for n in range(0, ADDRESSES, 100):  # a few hold ETH: the node answers the same
            w3.eth.send_transaction(
                {"from": w3.eth.accounts[1], "to": addresses[n], "value": 10**15}
            )
        bind_addresses(isolated, "ethereum", addresses)
        assets = load_assets(ASSETS_FILE)
        wiring = WatcherWiring.from_settings(
            isolated, codec, assets, "eth-watcher.json", w3.eth.block_number
        )
        watcher = EthereumWatcher(wiring, url)
        watcher.view.start()
        watcher.view.wait_caught_up(120)
        wallets_known = len(watcher.operator_wallets())
        height = w3.eth.block_number
        started = time.monotonic()
        held = watcher.holdings(height)
        seconds = time.monotonic() - started
        watcher.view.stop()
        calls = wallets_known * len(held)

        records = ChainRecords()
        causes: dict[str, Decimal] = {}
        for n in range(ADDRESSES):
            deposit = f"ethereum:0x{n:064x}:0"
            records.fold(catalogue.CHAIN_OBSERVATIONS, {
                "deposit_id": deposit, "asset": "ETH", "block_number": n, "confirmations": 12,
                "amount": Decimal("0.001"), "status": "CONFIRMED"})  # fmt: skip
            causes[ids.deposit_command(deposit, "CONFIRMED", "")] = Decimal("0.001")
        for n in range(PAYOUTS):
            payout, tx_hash = f"po:u{n}:r", f"0x{n:062x}ff"
            records.fold(catalogue.PAYOUT_RESULTS, {"payout_id": payout, "tx_hash": tx_hash})
            records.fold(catalogue.WALLET_OUTFLOWS, {
                "tx_hash": tx_hash, "asset": "ETH", "block_number": ADDRESSES + n,
                "amount": Decimal("0.0005")})  # fmt: skip
            causes[ids.payout_result_command(payout, "CONFIRMED")] = Decimal("-0.0005")
        balance = {"asset": "ETH", "block_number": ADDRESSES + PAYOUTS, "head": 2 * ADDRESSES,
                   "balance": Decimal(0), "unconfirmed": Decimal(0)}  # fmt: skip
        started = time.monotonic()
        expected_holdings(balance, causes, records)
        expected_ms = (time.monotonic() - started) * 1000
        report(
            "wallet_reconciliation",
            addresses=wallets_known,
            assets=len(held),
            holdings_s=round(seconds, 2),
            calls_per_s=round(calls / seconds),
            expected_ms=round(expected_ms, 1),
            causes=len(causes),
        )
    finally:
        anvil.stop()
