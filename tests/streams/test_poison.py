"""Chaos with poison: one bad record of each kind on each input topic while a workload runs.

Balances stay exactly what the workload implies, every poison record is dead-lettered with
its reason, and no component restarts (the worker and its intake process keep their pids).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from tests.helpers import produce_encoded, read_all, values
from tests.ledger_inputs import (
    ETH_ADDRESS,
    breaker,
    deposit_request,
    internal_transfer,
    observation,
    payout_result,
    withdrawal,
)
from tests.streams.test_intake import intake_processes
from tests.streams.test_ledger_crash import run_phases, seed
from tests.streams.workload import Workload
from topics import catalogue
from topics.codec import SingleObjectCodec

codec = SingleObjectCodec()


def encoded(topic: str, record: dict) -> bytes:
    return codec.encode(topic, record)


def ledger_command(kind: str, account: str, payload_topic: str, payload: dict, command_id: str):
    envelope = {
        "command_id": command_id,
        "kind": kind,
        "account_id": account,
        "payload": encoded(payload_topic, payload),
        "source_topic": payload_topic,
        "source_partition": -1,
        "source_offset": -1,
    }
    return encoded(catalogue.LEDGER_COMMANDS, envelope)


def poison(n: int) -> list[tuple[str, str, bytes, str]]:
    """(topic, key, value, the dead letter's reason) of every kind of bad input."""
    mark = f"p{n}"
    bad_checksum = ETH_ADDRESS[:-5] + ETH_ADDRESS[-5:].lower()
    notification = {
        "message_id": f"N-{mark}",
        "account_id": "GB33BUKB20201555555555",
        "currency": "JPY",  # the account is in USD
        "entries": [],
        "created_at": datetime.now(UTC),
        "source_format": "json",
        "validation_findings": [],
    }
    return [
        (catalogue.DEPOSIT_REQUESTS, "acc-0001", b"\x00garbage", "undecodable"),
        (
            catalogue.DEPOSIT_REQUESTS,
            "acc-0001",
            encoded(
                catalogue.DEPOSIT_REQUESTS,
                {
                    **deposit_request("acc-0001", f"d-{mark}", "5", "0x1"),
                    "created_at": datetime(1999, 1, 1, tzinfo=UTC),
                },
            ),
            "invalid_field",
        ),
        (
            catalogue.WITHDRAWAL_REQUESTS,
            "acc-0002",
            encoded(
                catalogue.WITHDRAWAL_REQUESTS,
                withdrawal("acc-0002", f"w-{mark}", "5", destination=bad_checksum),
            ),
            "invalid_address",
        ),
        (
            catalogue.WITHDRAWAL_REQUESTS,
            "acc-0002",
            encoded(
                catalogue.WITHDRAWAL_REQUESTS, withdrawal("acc-0002", f"b-{mark}", "5", "xUSD")
            ),
            "payouts_unavailable",
        ),
        (
            catalogue.TRANSFER_REQUESTS,
            "acc-0003",
            encoded(
                catalogue.TRANSFER_REQUESTS,
                internal_transfer("acc-0003", f"t-{mark}", "1", "clearing:WEI"),
            ),
            "invalid_field",
        ),
        (
            catalogue.CHAIN_OBSERVATIONS,
            "acc-0004",
            encoded(catalogue.CHAIN_OBSERVATIONS, observation("acc-0004", "0", f"0xz{mark}")),
            "invalid_amount",
        ),
        (
            catalogue.CHAIN_OBSERVATIONS,
            "acc-0004",
            encoded(
                catalogue.CHAIN_OBSERVATIONS,
                observation("acc-0004", "0.0000001", f"0xd{mark}", asset="ETH"),
            ),
            "amount_below_minimum",
        ),
        (
            catalogue.CHAIN_OBSERVATIONS,
            "operator:WEI:assets",
            encoded(
                catalogue.CHAIN_OBSERVATIONS,
                observation("operator:WEI:assets", "9", f"0xo{mark}"),
            ),
            "invalid_field",
        ),
        (
            catalogue.PAYOUT_RESULTS,
            "acc-0005",
            encoded(
                catalogue.PAYOUT_RESULTS,
                payout_result("acc-0005", f"po:acc-0005:{mark}", "CONFIRMED", "-1"),
            ),
            "invalid_amount",
        ),
        (
            catalogue.PAYOUT_RESULTS,
            "acc-0005",
            encoded(
                catalogue.PAYOUT_RESULTS, payout_result("acc-0005", f"po:acc-0005:{mark}", "FAILED")
            ),
            "unknown_payout",
        ),
        (catalogue.TRANSFER_CREDITS, "acc-0006", b"\x01\x02", "undecodable"),
        (
            catalogue.BREAKER_STATE,
            "asset:NOPE",
            encoded(catalogue.BREAKER_STATE, breaker("OPEN", "asset:NOPE")),
            "invalid_field",
        ),
        (catalogue.LEDGER_COMMANDS, "acc-0007", b"not a command", "undecodable"),
        (  # past intake, straight into the ledger's log: it checks for itself
            catalogue.LEDGER_COMMANDS,
            "acc-0007",
            ledger_command(
                "CHAIN_OBSERVATION",
                "acc-0007",
                catalogue.CHAIN_OBSERVATIONS,
                observation("acc-0007", "0", f"0xl{mark}"),
                f"deposit:ethereum:0xl{mark}:0",
            ),
            "invalid_amount",
        ),
        (
            catalogue.LEDGER_COMMANDS,
            "acc-0007",  # keyed to acc-0007's partition, addressed to a control record
            ledger_command(
                "TRANSFER_CREDIT",
                "~control:0",
                catalogue.TRANSFER_REQUESTS,
                internal_transfer("x", f"c-{mark}", "5", "~control:0"),
                f"transfer-credit:c-{mark}",
            ),
            "invalid_field",
        ),
        (
            catalogue.BANK_NOTIFICATIONS,
            "GB33BUKB20201555555555",
            encoded(catalogue.BANK_NOTIFICATIONS, notification),
            "currency_mismatch",
        ),
        (
            catalogue.BANK_STATEMENTS,
            "GB33BUKB20201555555555",
            b"\xc3\x01" + bytes(8) + b"no such schema",
            "unknown_schema",
        ),
    ]


@pytest.mark.timeout(900)
def test_poison_on_every_input_topic_changes_nothing_and_stops_nothing(settings, start_worker):
    rng = random.Random(seed())
    workload = Workload(
        seed=rng.randrange(1 << 30),
        accounts=200,
        deposits=2000,
        withdrawals=1000,
        unaffordable=200,
        transfers=1500,
    )
    worker = start_worker()
    pid = worker.process.process.pid
    [intake_pid] = intake_processes(worker)
    injected: list[str] = []

    def inject(phase: int) -> None:
        batch = poison(phase)
        produce_encoded(settings, [(topic, key, value) for topic, key, value, _ in batch])
        injected.extend(reason for *_, reason in batch)

    run_phases(settings, workload, rng, inject)
    assert worker.process.alive() and worker.process.process.pid == pid
    assert intake_processes(worker) == [intake_pid]  # never restarted
    letters = values(read_all(settings, catalogue.DEAD_LETTERS))
    reasons = {letter["reason"] for letter in letters}
    assert set(injected) <= reasons, set(injected) - reasons
    for letter in letters:
        assert letter["error"], letter  # every refusal says why


def test_a_balance_past_what_the_wire_carries_is_refused_not_fatal(settings, start_worker):
    """Two deposits of the largest amount the wire carries: the balance the second would
    make cannot be encoded (it stopped the ledger on every restart); it is refused."""
    from tests.streams.test_ledger_worker import balances, wait_for

    worker = start_worker()
    big = "99999999999999999999"  # 10^20 - 1
    deposits = [observation("big", big, "0xb1"), observation("big", big, "0xb2")]
    deposits.append(observation("big", "3", "0xb3"))
    produce_encoded(
        settings,
        [("chain-observations", "big", encoded(catalogue.CHAIN_OBSERVATIONS, d)) for d in deposits],
    )
    wait_for(lambda: balances(worker, "big").get("WEI", {}).get("balance") == big, what="big")
    letters = values(read_all(settings, catalogue.DEAD_LETTERS))
    assert [letter["reason"] for letter in letters] == ["amount_out_of_range"] * 2
    assert worker.process.alive()
