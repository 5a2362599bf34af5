"""The ledger through a real worker and broker: flows, API, overspend."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.ledger.marks import IDEMPOTENCY_WINDOW_MS
from streams.ledger.records import FINAL_PAGE_PREFIX, MARK_PAGE_PREFIX
from tests.helpers import codec, produce, produce_many, producer_for, read_topic, values
from tests.http import call, call_text
from tests.ledger_inputs import ETH_ADDRESS, observation, payout_result, withdrawal
from topics import catalogue


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def balances(worker, account: str) -> dict:
    status, body = call("GET", f"{worker.api_url}/api/v1/accounts/{account}/balances")
    assert status == 200, body
    return body["balances"]


def request_status(worker, request_id: str) -> dict | None:
    status, body = call("GET", f"{worker.api_url}/api/v1/requests/{request_id}")
    return body if status == 200 else None


def final(worker, request_id: str, statuses=("COMPLETED", "REJECTED", "FAILED")) -> dict:
    return wait_for(
        lambda: (r := request_status(worker, request_id)) and r["status"] in statuses and r,
        what=f"{request_id} to finish",
    )


def test_deposit_withdraw_with_fees_and_transfer_through_the_worker(settings, start_worker):
    worker = start_worker()
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "alice", observation("alice", "9", "0xd9"))
    wait_for(lambda: balances(worker, "alice").get("WEI", {}).get("balance") == "9", what="deposit")
    status, body = call(
        "POST",
        f"{worker.api_url}/api/v1/withdrawals",
        {
            "request_id": "w1",
            "account_id": "alice",
            "asset": "WEI",
            "amount": "3",
            "destination_address": ETH_ADDRESS,
        },
    )
    assert (status, body["request_id"]) == (202, "w1")
    accepted = final(worker, "w1", ("ACCEPTED",))
    assert (accepted["amount"], accepted["fee"]) == ("3", "2")
    [command] = values(read_topic(settings, catalogue.PAYOUT_COMMANDS, until_count=1))
    produce(
        settings,
        catalogue.PAYOUT_RESULTS,
        "alice",
        payout_result("alice", command["payout_id"], "CONFIRMED", "1"),
    )
    assert final(worker, "w1")["status"] == "COMPLETED"
    status, _ = call(
        "POST",
        f"{worker.api_url}/api/v1/transfers",
        {
            "request_id": "t1",
            "account_id": "alice",
            "asset": "WEI",
            "amount": "4",
            "to_account_id": "bob",
        },
    )
    assert status == 202 and final(worker, "t1")["status"] == "COMPLETED"
    wait_for(lambda: balances(worker, "bob").get("WEI", {}).get("balance") == "4", what="credit")
    assert balances(worker, "alice")["WEI"] == {"balance": "0", "reserved": "0", "available": "0"}
    entries = values(read_topic(settings, catalogue.LEDGER_ENTRIES, until_count=6))
    kinds = sorted(entry["kind"] for entry in entries)
    assert kinds == [
        "deposit",
        "network_fee_correction",
        "transfer_in",
        "transfer_out",
        "withdrawal",
        "withdrawal_fee",
    ]
    for entry in entries:
        debits = sum(p["amount"] for p in entry["postings"] if p["direction"] == "DEBIT")
        credits = sum(p["amount"] for p in entry["postings"] if p["direction"] == "CREDIT")
        assert debits == credits > 0
    # the feed's commands are counted; its lag is measured (every 5 s) and nothing is left
    metrics = wait_for(
        lambda: (
            (text := call_text(f"{worker.api_url}/metrics"))
            and 'token_engine_consumer_lag{agent="ledger"} 0.0' in text
            and text
        ),
        what="the ledger's lag",
    )
    processed = re.search(r'token_engine_events_processed_total\{agent="ledger"\} (\S+)', metrics)
    # deposit, withdrawal, payout result, transfer, its credit leg
    assert processed and float(processed.group(1)) >= 5


def changelog(settings, wanted, timeout_s: float = 60.0) -> dict[bytes, bytes | None]:
    """The accounts table's changelog, key -> latest value (None: deleted), read from the
    start until `wanted(latest)` holds."""
    consumer = Consumer({"bootstrap.servers": settings.kafka, "group.id": "test-changelog"})
    name = f"{settings.app_id}-accounts-changelog"
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(8)])
    latest: dict[bytes, bytes | None] = {}
    try:
        wait_for(
            lambda: (
                latest.update(
                    (m.key(), m.value()) for m in consumer.consume(1000, 0.2) if not m.error()
                )
                or wanted(latest)
            ),
            timeout_s,
            "the changelog",
        )
    finally:
        consumer.close()
    return latest


def pages_of(latest: dict[bytes, bytes | None], prefix: str) -> dict[bytes, bytes | None]:
    return {key: value for key, value in latest.items() if key.startswith(prefix.encode())}


def test_many_deposits_to_one_account_are_each_credited_once_across_a_crash(settings, start_worker):
    """The account's oldest deposit marks move to sealed pages (its record stays one small
    message); after a SIGKILL the new worker recovers them, and every deposit sent again
    changes nothing."""
    worker = start_worker()
    deposits = 3_500
    items = [("hot", observation("hot", "1", f"0x{n:06d}")) for n in range(deposits)]
    produce_many(settings, catalogue.CHAIN_OBSERVATIONS, items)
    wait_for(
        lambda: balances(worker, "hot").get("WEI", {}).get("balance") == str(deposits),
        what="the deposits",
    )
    latest = changelog(settings, lambda latest: len(pages_of(latest, MARK_PAGE_PREFIX)) >= 2)
    assert len(pages_of(latest, MARK_PAGE_PREFIX)) == 2
    worker.kill()
    worker = start_worker()
    produce_many(settings, catalogue.CHAIN_OBSERVATIONS, items)  # every deposit again
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "hot", observation("hot", "1", "0xlast"))
    wait_for(
        lambda: Decimal(balances(worker, "hot").get("WEI", {}).get("balance", 0)) > deposits,
        what="the last deposit, after the repeats",
    )
    last_cause = "deposit:ethereum:0xlast:0"
    entries = values(
        read_topic(
            settings,
            catalogue.LEDGER_ENTRIES,
            until=lambda records: any(r["value"]["cause_id"] == last_cause for r in records),
        )
    )
    # the account's chain: the last deposit is its (deposits + 1)th transaction, no repeat between
    [last] = [entry for entry in entries if entry["cause_id"] == last_cause][:1]
    assert last["sequence"] == deposits + 1
    assert balances(worker, "hot")["WEI"]["balance"] == str(deposits + 1)


def test_many_withdrawals_from_one_account_are_paged_then_forgotten_and_never_repeated(
    settings, start_worker
):
    """Final request marks and payouts move to final pages (the record stays one small
    message); once the account's clock passes their window the pages are deleted
    (tombstones), and after a SIGKILL a repeat is an expired request, never a payout."""
    worker = start_worker()
    count = 600  # 3 marks or payouts each: past the 1,000 a record keeps
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "busy", observation("busy", "1810", "0xd1"))
    wait_for(lambda: balances(worker, "busy").get("WEI"), what="the deposit")
    requests = [("busy", withdrawal("busy", f"w{n:04d}", "1")) for n in range(count)]
    produce_many(settings, catalogue.WITHDRAWAL_REQUESTS, requests)
    wait_for(lambda: balances(worker, "busy")["WEI"]["reserved"] == "1800", what="prepared")
    results = [
        ("busy", payout_result("busy", f"po:busy:w{n:04d}", "CONFIRMED")) for n in range(count)
    ]
    produce_many(settings, catalogue.PAYOUT_RESULTS, results)
    wait_for(lambda: balances(worker, "busy")["WEI"]["reserved"] == "0", what="committed")
    latest = changelog(settings, lambda latest: len(pages_of(latest, FINAL_PAGE_PREFIX)) >= 2)
    assert all(pages_of(latest, FINAL_PAGE_PREFIX).values())

    # a command stamped past the window (as by a clock running ahead): the account's
    # record sweeps, its final pages are deleted
    later_ms = int(time.time() * 1000) + IDEMPOTENCY_WINDOW_MS + 2 * 3600 * 1000
    envelope = {
        "command_id": "deposit:ethereum:0xlater:0",
        "kind": "CHAIN_OBSERVATION",
        "account_id": "busy",
        "payload": codec.encode(catalogue.CHAIN_OBSERVATIONS, observation("busy", "1", "0xlater")),
        "source_topic": catalogue.CHAIN_OBSERVATIONS,
        "source_partition": 0,
        "source_offset": 0,
    }
    producer = producer_for(settings, catalogue.LEDGER_COMMANDS)  # as intake signs it
    producer.produce(
        settings.topic_prefix + catalogue.LEDGER_COMMANDS,
        codec.encode(catalogue.LEDGER_COMMANDS, envelope),
        b"busy",
        timestamp=later_ms,
    )
    assert producer.flush(30) == 0
    wait_for(lambda: balances(worker, "busy")["WEI"]["balance"] == "11", what="the later one")
    deleted = lambda latest: (  # noqa: E731
        len(pages := pages_of(latest, FINAL_PAGE_PREFIX)) >= 2 and not any(pages.values())
    )
    assert deleted(changelog(settings, deleted))  # each page's last entry is a tombstone

    worker.kill()
    worker = start_worker()
    produce(settings, catalogue.WITHDRAWAL_REQUESTS, "busy", withdrawal("busy", "w0001", "1"))
    expired = lambda records: [  # noqa: E731
        r for r in values(records) if r["request_id"] == "w0001" and r["status"] == "REJECTED"
    ]
    [rejection] = expired(read_topic(settings, catalogue.REQUEST_RESULTS, until=expired))
    assert rejection["reason"] == "request_expired"
    assert balances(worker, "busy")["WEI"] == {"balance": "11", "reserved": "0", "available": "11"}
    assert final(worker, "w0001")["status"] == "COMPLETED"  # the API shows the decision


def test_concurrent_withdrawals_never_exceed_available(settings, start_worker):
    worker = start_worker()
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "carol", observation("carol", "100", "0xc1"))
    wait_for(lambda: balances(worker, "carol").get("WEI"), what="deposit")

    def withdraw(n: int) -> int:
        return call(
            "POST",
            f"{worker.api_url}/api/v1/withdrawals",
            {
                "request_id": f"over-{n}",
                "account_id": "carol",
                "asset": "WEI",
                "amount": "1",
                "destination_address": ETH_ADDRESS,
            },
        )[0]

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(withdraw, range(200))) == {202}
    results = [final(worker, f"over-{n}", ("ACCEPTED", "REJECTED")) for n in range(200)]
    accepted = [r for r in results if r["status"] == "ACCEPTED"]
    rejected = [r for r in results if r["status"] == "REJECTED"]
    assert len(accepted) == 33  # 33 * (1 + fee 2) = 99 <= 100 < 34 * 3
    assert {r["reason"] for r in rejected} == {"insufficient_funds"}
    assert sum(Decimal(r["amount"]) + Decimal(r["fee"]) for r in accepted) <= 100
    assert balances(worker, "carol")["WEI"] == {
        "balance": "100",
        "reserved": "99",
        "available": "1",
    }


def test_garbage_on_ledger_commands_and_bad_requests_keep_the_ledger_moving(settings, start_worker):
    worker = start_worker()
    produce_many(settings, catalogue.LEDGER_COMMANDS, [("dave", b"\xc3\x01junk-junk-junk")])
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "dave", observation("dave", "5", "0xda"))
    wait_for(lambda: balances(worker, "dave").get("WEI"), what="deposit after garbage")
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=1))
    assert letters[0]["component"] == "ledger"
