"""Storiqa invariant 1 against a real node (anvil) and the worker: what the operator's
wallets hold equals what the ledger says the operator holds, at every block.

A hot wallet funded from outside (capital), deposits of ETH and a token to a bound address,
and payouts of both: every balance record the watcher publishes, read while deposits
confirm and payouts are mined and committed, is OK (the in-flight movements are placed at
their blocks). A deposit the watcher never saw (sent before its start block) is a surplus,
reported once; a transfer out of the hot wallet made with its key behind the engine's
back puts the ledger above the chain: CRITICAL, with the breaker open.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from eth_account import Account

from connectors.chain_watcher import WatcherWiring
from connectors.ethereum import EthereumWatcher
from core.assets import load_assets
from tests.connectors.test_ethereum import (
    bind,
    codec,
    executor_for,
    mine,
    run_in_thread,
    stolen,
)
from tests.helpers import read_topic, values
from tests.http import call
from tests.streams.test_ledger_worker import balances, final, wait_for
from topics import catalogue


def watcher_from(settings, w3, hot: str, state_file: str, start: int) -> EthereumWatcher:
    assets = load_assets(settings.assets_file)
    wiring = WatcherWiring.from_settings(settings, codec, assets, state_file, start)
    return EthereumWatcher(replace(wiring, hot_wallets=(hot,)), settings.eth_rpc)


def mine_read(w3, watcher: EthereumWatcher, blocks: int) -> None:
    """Mine blocks one at a time, each read by the watcher before the next."""
    for _ in range(blocks):
        mine(w3, 1)
        number = w3.eth.block_number
        wait_for(lambda n=number: watcher.state.last_block >= n, what=f"block {number} read")


def holdings(settings, until) -> list[dict]:
    found = read_topic(
        settings,
        catalogue.RECONCILIATION_RESULTS,
        until=lambda rs: until([r["value"] for r in rs if is_holdings(r["value"])]),
    )
    return [r for r in values(found) if is_holdings(r)]


def is_holdings(result: dict) -> bool:
    return result["check_id"].startswith("holdings:")


def block_of(result: dict) -> int:
    return int(result["check_id"].rsplit(":", 1)[1])


def held(w3, token, addresses, asset: str, block: int) -> Decimal:
    if asset == "ETH":
        return Decimal(sum(w3.eth.get_balance(a, block) for a in addresses)).scaleb(-18)
    units = sum(token.functions.balanceOf(a).call(block_identifier=block) for a in addresses)
    return Decimal(units).scaleb(-6)


def test_the_wallets_hold_what_the_ledger_says_at_every_block(chain, start_worker):
    w3, token, settings = chain
    worker = start_worker(settings=settings)
    hot = Account.create()
    deposit = Account.create().address
    bind(settings, deposit, "holly")
    watcher = watcher_from(settings, w3, hot.address, "eth-watcher.json", w3.eth.block_number)
    executor = executor_for(settings, bytes(hot.key), "payouts-holdings")
    threads = [run_in_thread(watcher), run_in_thread(executor)]
    funder = w3.eth.accounts[0]
    destination = Account.create().address
    try:
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[1], "to": hot.address, "value": 2 * 10**18}
        )
        token.functions.transfer(hot.address, 500 * 10**6).transact({"from": funder})
        w3.eth.send_transaction({"from": funder, "to": deposit, "value": 10**18})
        token.functions.transfer(deposit, 100 * 10**6).transact({"from": funder})
        mine_read(w3, watcher, 12)  # past every level: capital and holly's deposits credited
        wait_for(lambda: len(balances(worker, "holly")) == 2, what="holly's deposits")
        for request_id, asset, amount in (("h-eth", "ETH", "0.1"), ("h-tok", "TOK", "10")):
            body = {"request_id": request_id, "account_id": "holly", "asset": asset,
                    "amount": amount, "destination_address": destination}  # fmt: skip
            assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
            assert final(worker, request_id)["status"] == "COMPLETED"
        mine_read(w3, watcher, 2)
        last = w3.eth.block_number
        checked = holdings(
            settings,
            lambda rs: {r["asset"] for r in rs if block_of(r) == last} == {"ETH", "TOK"},
        )
        assert len({block_of(r) for r in checked}) >= 14  # deposits and payouts under way
        assert {r["level"] for r in checked} == {"OK"}, [r for r in checked if r["level"] != "OK"]
        for result in checked:  # what the node says the two wallets held at that block
            chain_held = held(w3, token, (hot.address, deposit), result["asset"], block_of(result))
            assert result["bank_balance"] == result["ledger_balance"] == chain_held
        assert {r["account_id"] for r in checked} == {
            "ethereum:wallets:ETH",
            "ethereum:wallets:TOK",
        }
        final_eth = next(r for r in checked if block_of(r) == last and r["asset"] == "ETH")
        assert final_eth["bank_balance"] > Decimal("2.8")  # 2 capital + 1 deposit - payout, gas

        # value the watcher never saw: sent while it was stopped, it starts after that block
        watcher.stop()
        threads[0].join(10)
        w3.eth.send_transaction({"from": funder, "to": deposit, "value": 5 * 10**17})
        after = w3.eth.block_number + 1
        watcher = watcher_from(settings, w3, hot.address, "eth-watcher-late.json", after)
        threads[0] = run_in_thread(watcher)
        mine(w3, 3)
        surplus = holdings(settings, lambda rs: any(r["level"] == "MINOR" for r in rs))
        [minor] = [r for r in surplus if r["level"] == "MINOR"][:1]
        assert (minor["asset"], minor["difference"]) == ("ETH", Decimal("0.5"))
        mine(w3, 2)
        findings = values(read_topic(settings, catalogue.DISCREPANCIES, timeout_s=3))
        mismatches = [d for d in findings if d["type"] == "BALANCE_MISMATCH"]
        assert [(d["severity"], d["difference"]) for d in mismatches] == [("LOW", Decimal("0.5"))]
        assert not [r for r in values(read_topic(settings, catalogue.BREAKER_STATE, timeout_s=1))]

        # taken out of the hot wallet with its key: the ledger is above the chain
        theft = stolen(w3, bytes(hot.key), Account.create().address, 10**18)
        gas = Decimal(theft["gasUsed"] * theft["effectiveGasPrice"]).scaleb(-18)
        deficit = holdings(settings, lambda rs: any(r["level"] == "CRITICAL" for r in rs))
        [critical] = [r for r in deficit if r["level"] == "CRITICAL"]
        assert block_of(critical) == theft["blockNumber"]
        assert critical["difference"] == Decimal("0.5") - 1 - gas
        alerts = values(read_topic(settings, catalogue.ALERTS, timeout_s=3))
        [raised] = [a for a in alerts if a["kind"] == "wallet.holdings_deficit"]
        assert raised["severity"] == "CRITICAL" and "above the chain" in raised["message"]
        opened = values(read_topic(settings, catalogue.BREAKER_STATE, timeout_s=3))
        assert {(b["scope"], b["state"]) for b in opened} >= {("global", "OPEN")}
    finally:
        for component in (watcher, executor):
            component.stop()
        for thread in threads:
            thread.join(10)
