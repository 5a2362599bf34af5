"""Demo steps moving money: a fiat deposit, withdrawals (one failing and rolled back),
a cross-chain and an internal transfer, then a load of mixed requests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from eth_account import Account
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tokengine.demo.chain import btc_withdrawal
from tokengine.demo.harness import Demo, DemoFailure, console
from tokengine.demo.scenario import AED_ACCOUNT, USD_ACCOUNT
from topics import catalogue
from topics.kafka import flush
from topics.tail import read_to_end


def flows(demo: Demo) -> None:
    demo.step("Fiat deposit, withdrawals, a failed payout, cross-chain and internal transfers")
    answer = demo.camt054("DEMO-054-1", AED_ACCOUNT, "CRDT", "10000.00", "BNK-AE-1", "TKE-ALICE")
    demo.report.check(
        "camt.054 fiat deposit: alice credited 10000.00 xAED",
        demo.balance("alice", "xAED") == Decimal("10000") and answer["threshold_level"] == "OK",
        f"tier 1: bank {answer['bank_balance']} = ledger {answer['ledger_balance']}",
    )
    destination = Account.create().address
    demo.withdraw("demo-w1", "bob", "ETH", "0.05", destination)
    done = demo.result("demo-w1")
    paid = demo.payout_result("po:bob:demo-w1")
    chain_ok = demo.w3.eth.get_balance(destination) == 5 * 10**16
    demo.report.check(
        "bob withdraws 0.05 ETH (fee 0.0005)",
        done["status"] == "COMPLETED"
        and chain_ok
        and demo.balance("bob", "ETH") == Decimal("0.0495"),
        f"paid on chain, network fee {paid['network_fee']} ETH booked to the operator",
    )
    if demo.btc:
        btc_withdrawal(demo)
    demo.withdraw("demo-w2", "carol", "ETH", "0.5", demo.token.address)  # refuses ETH
    failed = demo.result("demo-w2")
    demo.report.check(
        "carol's payout to a contract that refuses ETH fails and is rolled back",
        failed["status"] == "FAILED" and demo.balance("carol", "ETH") == Decimal("1.9999"),
        "reservation released, failure fee 0.0001 ETH charged",
    )
    tok_destination = Account.create().address
    transfer = {
        "request_id": "demo-x1",
        "account_id": "bob",
        "kind": "CROSS_CHAIN",
        "asset": "xUSD",
        "amount": "250.00",
        "destination_asset": "TOK",
        "destination_address": tok_destination,
        "deposit_tx_hash": "BNK-US-1",
        "deposit_output_index": 0,
    }
    status, answer = demo.api("POST", "/api/v1/transfers", transfer)
    if status != 202:
        raise DemoFailure(f"cross-chain transfer: {status} {answer}")
    demo.result("demo-x1", ("ACCEPTED",))
    demo.camt054("DEMO-054-2", USD_ACCOUNT, "CRDT", "250.00", "BNK-US-1", "TKE-BOB")
    crossed = demo.result("demo-x1")
    received = demo.token.functions.balanceOf(tok_destination).call()
    demo.report.check(
        "cross-chain: 250.00 USD in at the bank, 249 TOK out on Ethereum (fee 1)",
        crossed["status"] == "COMPLETED" and received == 249 * 10**6,
        f"request {crossed['status']}",
    )
    internal = {
        "request_id": "demo-t1",
        "account_id": "alice",
        "kind": "INTERNAL",
        "asset": "xAED",
        "amount": "100.00",
        "to_account_id": "bob",
    }
    demo.api("POST", "/api/v1/transfers", internal)
    demo.result("demo-t1")
    demo.wait(lambda: demo.balance("bob", "xAED") == Decimal("100"), "bob's credit")
    demo.report.check(
        "internal transfer alice -> bob 100.00 xAED",
        demo.balance("alice", "xAED") == Decimal("9900"),
        "debit and credit on two partitions through the clearing account",
    )


def load(demo: Demo) -> None:
    demo.step(f"Load: {demo.load_requests} mixed requests")
    created = datetime.now(UTC)
    messages = []
    for n in range(demo.load_requests):
        kind = n % 3
        if kind == 0:
            topic, value = (
                catalogue.TRANSFER_REQUESTS,
                {
                    "request_id": f"load-{n}",
                    "account_id": "alice",
                    "kind": "INTERNAL",
                    "asset": "xAED",
                    "amount": Decimal("0.01"),
                    "to_account_id": f"user{n % 97}",
                    "destination_asset": None,
                    "destination_address": None,
                    "deposit_tx_hash": None,
                    "deposit_output_index": None,
                    "created_at": created,
                },
            )
        elif kind == 1:  # refused: the account holds nothing
            topic, value = (
                catalogue.WITHDRAWAL_REQUESTS,
                {
                    "request_id": f"load-{n}",
                    "account_id": f"user{n % 89}-empty",
                    "asset": "ETH",
                    "amount": Decimal("0.01"),
                    "destination_address": demo.addresses["alice"],
                    "created_at": created,
                },
            )
        else:  # announced deposits, waiting for their transfer
            topic, value = (
                catalogue.DEPOSIT_REQUESTS,
                {
                    "request_id": f"load-{n}",
                    "account_id": f"user{n % 83}",
                    "asset": "ETH",
                    "amount": Decimal("0.01"),
                    "chain": "ethereum",
                    "tx_hash": f"0x{n:064x}",
                    "output_index": 0,
                    "created_at": created,
                },
            )
        messages.append((topic, value["account_id"], demo.codec.encode(topic, value)))
    started = time.monotonic()
    for topic, key, value in messages:
        demo.producer.produce(demo.settings.topic_prefix + topic, value, key.encode())
        demo.producer.poll(0)
    flush(demo.producer, "the load", timeout_s=60)
    decided: set[str] = set()
    with Progress(
        TextColumn("   results"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("load", total=demo.load_requests, rate="")
        deadline = time.monotonic() + 300
        while len(decided) < demo.load_requests and time.monotonic() < deadline:
            for result in read_to_end(demo.settings, catalogue.REQUEST_RESULTS, timeout_s=10):
                if result["request_id"].startswith("load-"):
                    decided.add(result["request_id"])
            rate = len(decided) / (time.monotonic() - started)
            progress.update(task, completed=len(decided), rate=f"{rate:.0f} requests/s")
            time.sleep(0.5)
    seconds = time.monotonic() - started
    demo.report.check(
        f"{demo.load_requests} requests decided",
        len(decided) == demo.load_requests,
        f"{demo.load_requests / seconds:.0f} requests/s end to end (one worker)",
    )
