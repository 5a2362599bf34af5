"""The Ethereum watcher and payout executor against a real node (anvil) and the worker.

Deposits of ETH and of an ERC20 compiled offline with solc are credited once their
confirmations reach the security level; a reorg removes an unconfirmed deposit and makes
a credited one an alert, never a second credit; a payout is paid once, with its network
fee, even when the executor restarts after recording it; value that leaves the hot wallet
or a deposit address in a transaction no payout recorded opens the breaker in its block.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from eth_account import Account
from prometheus_client import REGISTRY
from web3 import Web3

from connectors.chain_watcher import WatcherWiring
from connectors.eth_payouts import EthereumPayouts
from connectors.ethereum import EthereumWatcher
from connectors.payout_executor import ExecutorWiring
from core.assets import load_assets
from tests.helpers import produce, read_topic, values
from tests.http import call
from tests.streams.test_ledger_worker import balances, final, wait_for
from topics import catalogue
from topics.codec import SingleObjectCodec

Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"
codec = SingleObjectCodec()


def dev_key(index: int) -> bytes:
    return bytes(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key)


def run_in_thread(component) -> threading.Thread:
    thread = threading.Thread(target=component.run, daemon=True)
    thread.start()
    return thread


def watcher_for(settings, w3, hot_wallets: tuple[str, ...] = ()) -> EthereumWatcher:
    assets = load_assets(settings.assets_file)
    wiring = WatcherWiring.from_settings(
        settings, codec, assets, "eth-watcher.json", w3.eth.block_number
    )
    return EthereumWatcher(replace(wiring, hot_wallets=hot_wallets), settings.eth_rpc)


def bind(settings, address: str, account: str) -> None:
    binding = {
        "chain": "ethereum",
        "address": address,
        "account_id": account,
        "bound_at": datetime.now(UTC),
    }
    produce(settings, catalogue.ADDRESS_BINDINGS, f"ethereum:{address}", binding)


def observations(settings, deposit_id: str, count: int) -> list[dict]:
    found = read_topic(
        settings,
        catalogue.CHAIN_OBSERVATIONS,
        until=lambda rs: sum(r["value"]["deposit_id"] == deposit_id for r in rs) >= count,
    )
    return [r for r in values(found) if r["deposit_id"] == deposit_id]


def mine(w3: Web3, blocks: int) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])


def test_deposits_wait_for_their_level_and_reorgs_never_credit_twice(chain, start_worker):
    w3, token, settings = chain
    worker = start_worker(settings=settings)
    deposit_address = Account.create().address
    bind(settings, deposit_address, "dave")
    watcher = watcher_for(settings, w3)
    thread = run_in_thread(watcher)
    try:
        # 0.1 ETH at 3000 USD = 300 USD: level "< 500: 3"
        sender = w3.eth.accounts[1]
        tx = w3.eth.send_transaction({"from": sender, "to": deposit_address, "value": 10**17})
        deposit_id = f"ethereum:{tx.to_0x_hex().lower()}:0"
        [seen] = observations(settings, deposit_id, 1)
        assert (seen["status"], seen["confirmations"], seen["confirmations_required"]) == (
            "SEEN",
            1,
            3,
        )
        assert balances(worker, "dave").get("ETH") is None  # not credited before its level
        mine(w3, 2)
        last = observations(settings, deposit_id, 3)[-1]
        assert (last["status"], last["confirmations"], last["amount"]) == (
            "CONFIRMED",
            3,
            Decimal("0.1"),
        )
        wait_for(lambda: balances(worker, "dave").get("ETH"), what="ETH credited")
        assert Decimal(balances(worker, "dave")["ETH"]["balance"]) == Decimal("0.1")

        # 15 TOK = 15 USD: level "< 20: 0", credited at once
        token.functions.transfer(deposit_address, 15 * 10**6).transact({"from": w3.eth.accounts[0]})
        wait_for(lambda: balances(worker, "dave").get("TOK"), what="TOK credited")
        assert Decimal(balances(worker, "dave")["TOK"]["balance"]) == 15

        # a reorg takes away an unconfirmed ETH deposit and a credited TOK deposit
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        tx_eth = w3.eth.send_transaction(
            {"from": sender, "to": deposit_address, "value": 2 * 10**17}
        )
        tx_tok = token.functions.transfer(deposit_address, 5 * 10**6).transact(
            {"from": w3.eth.accounts[0]}
        )
        eth_id = f"ethereum:{tx_eth.to_0x_hex().lower()}:0"
        tok_id = next(
            o["deposit_id"]
            for o in values(
                read_topic(
                    settings,
                    catalogue.CHAIN_OBSERVATIONS,
                    until=lambda rs: any(
                        tx_tok.to_0x_hex().lower() in r["value"]["deposit_id"] for r in rs
                    ),
                )
            )
            if tx_tok.to_0x_hex().lower() in o["deposit_id"]
        )
        wait_for(
            lambda: Decimal(balances(worker, "dave")["TOK"]["balance"]) == 20, what="TOK 5 credited"
        )
        assert observations(settings, eth_id, 1)[-1]["status"] == "SEEN"  # 600 USD: needs 4
        w3.provider.make_request("evm_revert", [snapshot])
        mine(w3, 4)
        removed = {
            o["deposit_id"]
            for o in values(
                read_topic(
                    settings,
                    catalogue.CHAIN_OBSERVATIONS,
                    until=lambda rs: sum(r["value"]["status"] == "REMOVED" for r in rs) >= 2,
                )
            )
            if o["status"] == "REMOVED"
        }
        assert removed == {eth_id, tok_id}
        alerts = values(
            read_topic(
                settings,
                catalogue.ALERTS,
                until=lambda rs: any(
                    r["value"]["kind"] == "deposit.reorged_after_credit" for r in rs
                ),
            )
        )
        assert any(a["details"].get("deposit_id") == tok_id for a in alerts)
        mine(w3, 3)
        assert Decimal(balances(worker, "dave")["ETH"]["balance"]) == Decimal("0.1")  # not 0.3
        assert Decimal(balances(worker, "dave")["TOK"]["balance"]) == 20  # never credited twice
    finally:
        watcher.stop()
        thread.join(10)

    # a restarted watcher resumes from its saved position: nothing republished as new
    restarted = watcher_for(settings, w3)
    assert restarted.state.last_block == watcher.state.last_block > 0
    assert restarted.state.tracked.keys() == watcher.state.tracked.keys()
    assert eth_id not in restarted.state.tracked


def executor_for(settings, key: bytes, group: str) -> EthereumPayouts:
    assets = load_assets(settings.assets_file)
    wiring = ExecutorWiring.from_settings(settings, group, codec, assets)
    return EthereumPayouts(wiring, settings.eth_rpc, key)


def test_payouts_are_paid_once_with_the_network_fee(chain, start_worker):
    w3, token, settings = chain
    worker = start_worker(settings=settings)
    key = dev_key(5)
    hot_wallet = Account.from_key(key).address
    token.functions.transfer(hot_wallet, 1000 * 10**6).transact({"from": w3.eth.accounts[0]})
    produce(  # erin holds 1 ETH and 100 TOK in the ledger
        settings,
        catalogue.CHAIN_OBSERVATIONS,
        "erin",
        observation_of("erin", "ETH", "1", "0xe1"),
    )
    produce(
        settings, catalogue.CHAIN_OBSERVATIONS, "erin", observation_of("erin", "TOK", "100", "0xe2")
    )
    wait_for(lambda: len(balances(worker, "erin")) == 2, what="erin's deposits")
    executor = executor_for(settings, key, "payouts-a")
    thread = run_in_thread(executor)
    destination = Account.create().address
    try:
        for request_id, asset, amount in (("pay-eth", "ETH", "0.25"), ("pay-tok", "TOK", "40")):
            body = {
                "request_id": request_id,
                "account_id": "erin",
                "asset": asset,
                "amount": amount,
                "destination_address": destination,
            }
            assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
            assert final(worker, request_id)["status"] == "COMPLETED"
        assert w3.eth.get_balance(destination) == 25 * 10**16
        assert token.functions.balanceOf(destination).call() == 40 * 10**6
        results = values(read_topic(settings, catalogue.PAYOUT_RESULTS, until_count=4))
        confirmed = [r for r in results if r["status"] == "CONFIRMED"]
        eth_result = next(r for r in confirmed if r["payout_id"] == "po:erin:pay-eth")
        receipt = w3.eth.get_transaction_receipt(eth_result["tx_hash"])
        fee = Decimal(receipt["gasUsed"] * receipt["effectiveGasPrice"]).scaleb(-18)
        assert eth_result["network_fee"] == fee > 0
        assert eth_result["network_fee_asset"] is None  # in the payout's asset
        # the token payout's gas is ETH the hot wallet spent: reported, and booked, in ETH
        tok_result = next(r for r in confirmed if r["payout_id"] == "po:erin:pay-tok")
        receipt = w3.eth.get_transaction_receipt(tok_result["tx_hash"])
        gas = Decimal(receipt["gasUsed"] * receipt["effectiveGasPrice"]).scaleb(-18)
        assert (tok_result["network_fee"], tok_result["network_fee_asset"]) == (gas, "ETH")

        def gas_booked(entries) -> bool:
            return any(e["value"]["kind"] == "network_fee_correction"
                       and e["value"]["postings"] == [
                           {"ledger_account": "operator:ETH:fees", "direction": "DEBIT",
                            "amount": gas},
                           {"ledger_account": "operator:ETH:assets", "direction": "CREDIT",
                            "amount": gas}] for e in entries)  # fmt: skip

        assert gas_booked(read_topic(settings, catalogue.LEDGER_ENTRIES, until=gas_booked))
        # 1 - 0.25 - 0.0005 fee; the network fee is the operator's (a correction it pays)
        assert Decimal(balances(worker, "erin")["ETH"]["balance"]) == Decimal("0.7495")
    finally:
        executor.stop()
        thread.join(10)

    # a restarted executor that sees the commands again pays nothing twice
    again = executor_for(settings, key, "payouts-b")  # a new group: every command again
    thread = run_in_thread(again)
    wait_for(lambda: again.view.wait_caught_up() and again.consumer.assignment(), what="assign")
    # crash between recording a payout and sending it: the next run sends it, once
    command = {
        "payout_id": "po:manual:1",
        "account_id": "manual",
        "request_id": "manual-1",
        "chain": "ethereum",
        "asset": "ETH",
        "amount": Decimal("0.01"),
        "fee": Decimal("0"),
        "destination_address": destination,
        "created_at": datetime.now(UTC),
    }
    nonce = w3.eth.get_transaction_count(hot_wallet, "pending")
    unsent = again.sign(command, load_assets(settings.assets_file)["ETH"], nonce)
    again.report(command, "SUBMITTED", tx_hash=unsent.hash.to_0x_hex(), nonce=nonce)
    produce(settings, catalogue.PAYOUT_COMMANDS, "manual", command)
    wait_for(
        lambda: any(
            r["payout_id"] == "po:manual:1" and r["status"] == "CONFIRMED"
            for r in values(read_topic(settings, catalogue.PAYOUT_RESULTS, timeout_s=1))
        ),
        what="the recorded payout sent once",
    )
    # the node refuses a payout the hot wallet cannot cover (Web3RPCError, not a
    # ValueError): it killed the executor, and every connector with it, on every restart;
    # now it is FAILED (its nonce unused: nothing paid) and the next payout goes out
    produce(settings, catalogue.PAYOUT_COMMANDS, "manual", b"\x00 not a payout command")
    too_big = {**command, "payout_id": "po:manual:2", "amount": Decimal("1000000")}
    after = {**command, "payout_id": "po:manual:3", "amount": Decimal("0.02")}
    produce(settings, catalogue.PAYOUT_COMMANDS, "manual", too_big)
    produce(settings, catalogue.PAYOUT_COMMANDS, "manual", after)

    def outcome(payout_id: str):
        for r in values(read_topic(settings, catalogue.PAYOUT_RESULTS, timeout_s=1)):
            if r["payout_id"] == payout_id and r["status"] in ("CONFIRMED", "FAILED"):
                return r
        return None

    wait_for(lambda: outcome("po:manual:3"), what="the payout after a refused one")
    assert outcome("po:manual:2")["status"] == "FAILED"
    assert outcome("po:manual:2")["reason"] == "rejected_by_node"
    assert outcome("po:manual:3")["status"] == "CONFIRMED" and thread.is_alive()
    again.stop()
    thread.join(10)
    assert w3.eth.get_balance(destination) == 28 * 10**16  # 0.25 + 0.01 + 0.02, none twice
    assert token.functions.balanceOf(destination).call() == 40 * 10**6
    assert again.sent == 2
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, timeout_s=3))
    executors = [
        (d["component"], d["reason"]) for d in letters if d["component"].endswith("payouts")
    ]
    assert executors == [("ethereum-payouts", "undecodable")]  # the ledger's: unknown payouts


def observation_of(account: str, asset: str, amount: str, tx: str) -> dict:
    return {
        "observation_id": f"ethereum:{tx}:0:b",
        "deposit_id": f"ethereum:{tx}:0",
        "chain": "ethereum",
        "asset": asset,
        "tx_hash": tx,
        "output_index": 0,
        "block_number": 1,
        "block_hash": "0xb",
        "from_address": "0xsender",
        "to_address": "0xdeposit",
        "account_id": account,
        "amount": Decimal(amount),
        "confirmations": 12,
        "confirmations_required": 12,
        "status": "CONFIRMED",
        "observed_at": datetime.now(UTC),
    }


def forged(settings, topic: str, key: str, value: dict) -> None:
    """A record produced straight to the broker by someone without the engine's keys."""
    produce(settings, topic, key, value, signed=False)


def test_forged_internal_records_are_refused_never_applied_never_paid(chain, start_worker):
    """Each kind of internal record, produced by a broker client without the engine's
    keys while withdrawals and transfers run: nothing is minted, paid, refunded, rebound,
    repriced or halted; each is dead-lettered with a CRITICAL alert."""
    w3, _token, settings = chain
    worker = start_worker(settings=settings)
    key = dev_key(6)
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "erin",
            observation_of("erin", "ETH", "1", "0xf0"))  # fmt: skip
    wait_for(lambda: balances(worker, "erin"), what="erin's deposit")
    executor = executor_for(settings, key, "payouts-forgery")
    watcher = watcher_for(settings, w3, hot_wallets=(Account.from_key(key).address,))
    threads = [run_in_thread(executor), run_in_thread(watcher)]
    thief = Account.create().address
    destination = Account.create().address
    forged_deposit, honest_deposit = Account.create().address, Account.create().address
    bind(settings, honest_deposit, "frank")
    try:
        forged(settings, catalogue.ADDRESS_BINDINGS, f"ethereum:{forged_deposit}",
               {"chain": "ethereum", "address": forged_deposit, "account_id": "mallory",
                "bound_at": datetime.now(UTC)})  # fmt: skip
        forged(
            settings,
            catalogue.PRICES,
            "ETH",
            {"asset": "ETH", "usd_price": Decimal("0.0001"), "as_of": datetime.now(UTC)},
        )
        forged(settings, catalogue.CHAIN_OBSERVATIONS, "mallory",
               observation_of("mallory", "ETH", "0.5", "0xf1"))  # fmt: skip
        credit = codec.encode(catalogue.CHAIN_OBSERVATIONS,
                              observation_of("mallory", "ETH", "5", "0xf2"))  # fmt: skip
        envelope = {"command_id": "deposit:ethereum:0xf2:0:CONFIRMED:0xb",
                    "kind": "CHAIN_OBSERVATION", "account_id": "mallory", "payload": credit,
                    "source_topic": catalogue.CHAIN_OBSERVATIONS, "source_partition": 0,
                    "source_offset": 0}  # fmt: skip
        forged(settings, catalogue.LEDGER_COMMANDS, "mallory", envelope)
        forged(
            settings,
            catalogue.TRANSFER_CREDITS,
            "mallory",
            {**envelope, "kind": "TRANSFER_CREDIT", "command_id": "transfer-credit:x"},
        )
        forged(settings, catalogue.PAYOUT_COMMANDS, "mallory",
               {"payout_id": "po:mallory:1", "account_id": "mallory", "request_id": "m-1",
                "chain": "ethereum", "asset": "ETH", "amount": Decimal("0.3"),
                "fee": Decimal("0"), "destination_address": thief,
                "created_at": datetime.now(UTC)})  # fmt: skip
        forged(settings, catalogue.BREAKER_STATE, "global",
               {"scope": "global", "state": "OPEN", "level": "CRITICAL", "reason": "forged",
                "actor": "operator:root", "changed_at": datetime.now(UTC)})  # fmt: skip
        forged(settings, catalogue.WALLET_OUTFLOWS, "ethereum",
               {"outflow_id": "ethereum:0xf3:ETH", "chain": "ethereum", "asset": "ETH",
                "tx_hash": "0xf3", "block_number": 1, "block_hash": "0xb",
                "wallet_address": thief, "wallet_role": "HOT", "to_address": thief,
                "amount": Decimal("1"), "observed_at": datetime.now(UTC)})  # fmt: skip
        forged(settings, catalogue.WALLET_BALANCES, "ethereum",
               {"balance_id": "ethereum:ETH:1", "chain": "ethereum", "asset": "ETH",
                "block_number": 1, "block_hash": "0xb", "head": 1, "balance": Decimal(0),
                "unconfirmed": Decimal(0), "wallets": 1,
                "observed_at": datetime.now(UTC)})  # fmt: skip
        # the workload, with the forgeries in flight: a payout and transfers
        body = {"request_id": "f-pay", "account_id": "erin", "asset": "ETH", "amount": "0.1",
                "destination_address": destination}  # fmt: skip
        assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
        for index in range(5):
            body = {"request_id": f"f-t{index}", "account_id": "erin", "to_account_id": "frank",
                    "asset": "ETH", "amount": "0.01"}  # fmt: skip
            assert call("POST", f"{worker.api_url}/api/v1/transfers", body)[0] == 202
        forged(settings, catalogue.PAYOUT_RESULTS, "erin",
               {"payout_id": "po:erin:f-pay", "account_id": "erin", "status": "FAILED",
                "tx_hash": None, "network_fee": None, "reason": "payout_failed",
                "detail": "forged", "reported_at": datetime.now(UTC), "nonce": None,
                "raw_transaction": None})  # fmt: skip
        paid = final(worker, "f-pay")  # paid, never refunded: the breaker stayed closed
        assert paid["status"] == "COMPLETED", paid
        fees = [final(worker, f"f-t{index}")["fee"] for index in range(5)]
        funder = w3.eth.accounts[0]
        for address in (forged_deposit, honest_deposit):  # the forged one is seen first
            w3.eth.send_transaction({"from": funder, "to": address, "value": 10**16})
        mine(w3, 15)
        wait_for(lambda: balances(worker, "frank").get("ETH", {}).get("balance") == "0.06",
                 what="frank's transfers and deposit")  # fmt: skip
    finally:
        for component in (executor, watcher):
            component.stop()
        for thread in threads:
            thread.join(10)
    assert balances(worker, "mallory") == {}
    assert w3.eth.get_balance(thief) == 0 and w3.eth.get_balance(destination) == 10**17
    erin = Decimal(balances(worker, "erin")["ETH"]["balance"])
    assert erin == Decimal("1") - Decimal("0.1") - Decimal("0.0005") - Decimal("0.05")
    assert sum(Decimal(f or 0) for f in fees) == 0
    watched = [o for o in values(read_topic(settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=3))
               if o["account_id"] == "mallory" and o["tx_hash"] != "0xf1"]  # fmt: skip
    assert watched == []  # the forged binding bound nothing
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, timeout_s=5))
    refused = {d["source_topic"] for d in letters if d["reason"] == "unauthenticated"}
    kinds = {catalogue.ADDRESS_BINDINGS, catalogue.PRICES, catalogue.CHAIN_OBSERVATIONS,
             catalogue.LEDGER_COMMANDS, catalogue.TRANSFER_CREDITS, catalogue.PAYOUT_COMMANDS,
             catalogue.BREAKER_STATE, catalogue.PAYOUT_RESULTS,
             catalogue.WALLET_OUTFLOWS, catalogue.WALLET_BALANCES}  # fmt: skip
    assert refused == kinds, refused
    alerts = values(read_topic(settings, catalogue.ALERTS, timeout_s=3))
    alerted = {a["details"]["topic"] for a in alerts
               if (a["kind"], a["severity"]) == ("record.unauthenticated", "CRITICAL")}  # fmt: skip
    assert alerted == kinds, alerted
    # the executor (in this process) counted its refusal where its /metrics shows it
    refusal = {"topic": catalogue.PAYOUT_COMMANDS, "reader": "ethereum-payouts"}
    assert REGISTRY.get_sample_value("token_engine_unauthenticated_records_total", refusal)


def wallet_checks(settings, tx_hashes: set[str]) -> dict[str, dict]:
    """The WALLET_ONCHAIN results of these transactions' outflows, by check id."""

    def checks(records):
        return {
            r["value"]["check_id"]: r["value"]
            for r in records
            if r["value"]["tier"] == "WALLET_ONCHAIN"
            and r["value"]["check_id"].split(":")[2] in tx_hashes
        }

    found = read_topic(
        settings,
        catalogue.RECONCILIATION_RESULTS,
        until=lambda rs: {c.split(":")[2] for c in checks(rs)} >= tx_hashes,
    )
    return checks(found)


def unexplained_alert(settings, tx_hash: str) -> dict:
    def mine(records):
        return [
            r["value"]
            for r in records
            if r["value"]["kind"] == "wallet.unexplained_outflow"
            and r["value"]["details"]["tx_hash"] == tx_hash
        ]

    return mine(read_topic(settings, catalogue.ALERTS, until=mine))[0]


def stolen(w3, key: bytes, to: str, wei: int) -> dict:
    """A transfer signed with an operator wallet's key behind the engine's back; its receipt."""
    thief = Account.from_key(key)
    signed = thief.sign_transaction({
        "to": to, "value": wei, "gas": 21_000, "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(thief.address), "chainId": w3.eth.chain_id,
    })  # fmt: skip
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


def test_an_outflow_no_payout_recorded_opens_the_breaker_in_its_block(chain, start_worker):
    """Storiqa invariant 4: each balance decrease on the chain has a pending transaction in
    the engine. The payouts' outflows (ETH, and a token with the gas it cost) are explained;
    a transfer out of the hot wallet made with its key, and one out of a deposit address,
    are CRITICAL at once: the alert names the transaction and the breaker opens before
    another block is mined."""
    w3, token, settings = chain
    worker = start_worker(settings=settings)
    key = dev_key(7)
    hot_wallet = Account.from_key(key).address
    deposit_key = Account.create()
    bind(settings, deposit_key.address, "wendy")
    executor = executor_for(settings, key, "payouts-guarded")
    watcher = watcher_for(settings, w3, hot_wallets=(hot_wallet,))
    threads = [run_in_thread(executor), run_in_thread(watcher)]
    destination, thief = Account.create().address, Account.create().address
    try:  # real deposits and tokens for the hot wallet: the ledger is what the chain holds
        funder = w3.eth.accounts[0]
        token.functions.transfer(hot_wallet, 1000 * 10**6).transact({"from": funder})
        w3.eth.send_transaction({"from": funder, "to": deposit_key.address, "value": 10**18})
        token.functions.transfer(deposit_key.address, 100 * 10**6).transact({"from": funder})
        mine(w3, 12)
        wait_for(lambda: len(balances(worker, "wendy")) == 2, what="wendy's deposits")
        for request_id, asset, amount in (("g-eth", "ETH", "0.1"), ("g-tok", "TOK", "10")):
            body = {"request_id": request_id, "account_id": "wendy", "asset": asset,
                    "amount": amount, "destination_address": destination}  # fmt: skip
            assert call("POST", f"{worker.api_url}/api/v1/withdrawals", body)[0] == 202
            assert final(worker, request_id)["status"] == "COMPLETED"
        paid = {
            r["payout_id"]: r["tx_hash"]
            for r in values(read_topic(settings, catalogue.PAYOUT_RESULTS, until_count=4))
            if r["status"] == "CONFIRMED"
        }
        eth_tx, tok_tx = paid["po:wendy:g-eth"], paid["po:wendy:g-tok"]
        checks = wallet_checks(settings, {eth_tx, tok_tx})
        by_asset = {(c["check_id"].split(":")[2], c["asset"]): c for c in checks.values()}
        assert set(by_asset) == {(eth_tx, "ETH"), (tok_tx, "TOK"), (tok_tx, "ETH")}
        assert {c["level"] for c in checks.values()} == {"OK"}
        assert by_asset[(tok_tx, "TOK")]["bank_balance"] == Decimal(10)
        receipt = w3.eth.get_transaction_receipt(eth_tx)
        gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert by_asset[(eth_tx, "ETH")]["bank_balance"] == Decimal(10**17 + gas).scaleb(-18)

        theft = stolen(w3, key, thief, 5 * 10**17)
        theft_hash = theft["transactionHash"].to_0x_hex()
        raised = unexplained_alert(settings, theft_hash)
        assert w3.eth.block_number == theft["blockNumber"]  # no block mined since
        assert raised["severity"] == "CRITICAL" and theft_hash in raised["message"]
        assert raised["details"]["amount"] == str(
            Decimal(5 * 10**17 + theft["gasUsed"] * theft["effectiveGasPrice"]).scaleb(-18)
        )
        opened = read_topic(
            settings,
            catalogue.BREAKER_STATE,
            until=lambda rs: any(r["value"]["state"] == "OPEN" for r in rs),
        )
        [breaker] = {r["value"]["scope"]: r["value"] for r in opened
                     if r["value"]["state"] == "OPEN"}.values()  # fmt: skip
        assert breaker["scope"] == "global" and theft_hash in breaker["reason"]
        assert breaker["actor"] == "reconciliation"
        [finding] = [
            d
            for d in values(read_topic(settings, catalogue.DISCREPANCIES, timeout_s=3))
            if d["reference"] == theft_hash
        ]
        assert (finding["type"], finding["severity"]) == ("UNEXPLAINED_OUTFLOW", "CRITICAL")

        # a deposit address is the operator's too: value taken out of it with its key
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": deposit_key.address, "value": 10**16}
        )
        emptied = stolen(w3, bytes(deposit_key.key), thief, 5 * 10**15)
        raised = unexplained_alert(settings, emptied["transactionHash"].to_0x_hex())
        assert "deposit wallet" in raised["message"]
    finally:
        for component in (executor, watcher):
            component.stop()
        for thread in threads:
            thread.join(10)
    assert w3.eth.get_balance(destination) == 10**17  # the payouts, once each
    assert executor.sent == 2


def test_transfers_into_the_hot_wallet_are_the_operators_capital(chain, start_worker):
    """What is sent to a hot wallet from outside the operator's wallets is value the
    operator holds: credited `operator assets -> operator capital` (ETH and a token), so
    the ledger's operator assets count what its wallets hold; a payout it makes is not."""
    w3, token, settings = chain
    start_worker(settings=settings)
    hot = Account.create()
    watcher = watcher_for(settings, w3, hot_wallets=(hot.address,))
    thread = run_in_thread(watcher)
    try:
        funded = w3.eth.send_transaction(
            {"from": w3.eth.accounts[1], "to": hot.address, "value": 2 * 10**18}
        ).to_0x_hex()
        tokens = (
            token.functions.transfer(hot.address, 300 * 10**6)
            .transact({"from": w3.eth.accounts[0]})
            .to_0x_hex()
        )
        for _ in range(12):  # past every security level
            w3.provider.make_request("evm_mine", [])

        def funding(entries) -> dict[str, list]:
            return {e["value"]["asset"]: e["value"]["postings"] for e in entries
                    if e["value"]["kind"] == "wallet_funding"}  # fmt: skip

        found = funding(read_topic(settings, catalogue.LEDGER_ENTRIES,
                                   until=lambda es: len(funding(es)) == 2))  # fmt: skip
        assert found == {
            asset: [
                {"ledger_account": f"operator:{asset}:assets", "direction": "DEBIT",
                 "amount": amount},
                {"ledger_account": f"operator:{asset}:capital", "direction": "CREDIT",
                 "amount": amount},
            ]
            for asset, amount in (("ETH", Decimal(2)), ("TOK", Decimal(300)))
        }  # fmt: skip
        confirmed = [
            o
            for o in values(read_topic(settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=3))
            if o["status"] == "CONFIRMED"
        ]
        assert {(o["tx_hash"], o["account_id"]) for o in confirmed} == {
            (funded, "treasury"), (tokens, "treasury")}  # fmt: skip
    finally:
        watcher.stop()
        thread.join(10)
