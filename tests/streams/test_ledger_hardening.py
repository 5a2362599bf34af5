"""The ledger trusts no input: what it cannot apply is refused whole (a dead letter, an
alert where an operator must act), never a crash; only its own broken state stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.ledger import awaiting, marks, payouts
from streams.ledger.apply import apply
from streams.ledger.commands import Command
from streams.ledger.errors import Rejected
from streams.ledger.invariants import check_invariants
from streams.ledger.records import (
    CONTROL_PREFIX,
    AccountRecord,
    control_key,
    encode_record,
    record_partition,
)
from streams.ledger.step import Context
from tests.ledger_inputs import (
    ASSETS,
    ETH_ADDRESS,
    T0,
    breaker,
    cross_chain,
    deposit_request,
    internal_transfer,
    observation,
    payout_result,
    withdrawal,
)
from tests.streams.pure_ledger import PureLedger, codec
from topics import catalogue

DAY_MS = 24 * 3600 * 1000


def alerts(ledger: PureLedger) -> list[dict]:
    return ledger.of_topic(ledger.outputs, catalogue.ALERTS)


def test_a_zero_amount_deposit_is_refused_not_fatal() -> None:
    # anyone can send transfer(deposit_address, 0); it needs 0 confirmations; the ledger's
    # `assert amount > 0` then stopped the worker on every restart
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "0", "0xzero"))
    assert ledger.dead_letters == ["invalid_amount"]
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xreal"))
    assert ledger.balance("alice") == 5


def test_dust_below_the_minimum_deposit_is_never_credited() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "0.0000001", "0xdust", asset="ETH"))
    assert ledger.dead_letters == ["amount_below_minimum"]
    assert ledger.balance("alice", "ETH") == 0


def test_an_observation_of_an_asset_on_another_chain_is_refused() -> None:
    ledger = PureLedger()
    forged = {**observation("alice", "5", "0xbtc"), "chain": "bitcoin"}  # WEI is on ethereum
    ledger.submit("CHAIN_OBSERVATION", forged)
    assert ledger.dead_letters == ["invalid_field"] and ledger.balance("alice") == 0


def test_bank_assets_cannot_be_withdrawn_as_nothing_pays_them() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "bnk-1", asset="xUSD"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "20", "xUSD"))
    assert ledger.results("w1")[-1]["reason"] == "payouts_unavailable"
    assert ledger.record("alice").reserved_of("xUSD") == 0


def test_a_network_fee_the_asset_cannot_carry_is_refused_with_an_alert() -> None:
    # an ETH fee (18 decimals) booked as a USDT fee (6) failed the scale check and stopped
    # the ledger; now the result is refused, the payout stays prepared, an operator is told
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "0xu", asset="USDT"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "10", "USDT"))
    before = encode_record(ledger.record("alice"))
    ledger.submit(
        "PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "0.000021000000000001")
    )
    assert ledger.dead_letters == ["invalid_amount"]
    assert encode_record(ledger.record("alice")) == before
    [alert] = alerts(ledger)
    assert (alert["severity"], alert["kind"]) == ("CRITICAL", "ledger.invalid_amount")
    ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "0.01"))
    assert ledger.results("w1")[-1]["status"] == "COMPLETED"


def test_a_negative_network_fee_is_refused() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "0xa"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "10"))
    ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "-5"))
    assert ledger.dead_letters == ["invalid_amount"]
    assert ledger.record("alice").reserved_of("WEI") == 12


def test_a_credit_leg_of_an_asset_no_longer_configured_is_refused_with_an_alert() -> None:
    ledger = PureLedger()
    ledger.submit("TRANSFER_CREDIT", internal_transfer("bob", "t1", "5", "alice", asset="GONE"))
    assert ledger.dead_letters == ["unknown_asset"]
    assert alerts(ledger)[0]["severity"] == "CRITICAL"
    assert ledger.record("alice").ledger == {}


def test_deposit_announcements_are_bounded_and_expire() -> None:
    # pending announcements never expired: a few thousand grew a record past 1 MB
    ledger = PureLedger()
    limit = awaiting.MAX_AWAITING_DEPOSITS
    for n in range(limit + 1):
        ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", f"d{n}", "5", f"0x{n:04x}"))
    assert ledger.results(f"d{limit}")[-1]["reason"] == "too_many_pending_requests"
    assert len(ledger.record("alice").awaiting) == limit
    ledger.time_ms += 31 * DAY_MS  # the window passes by the ledger's clock
    later = {**deposit_request("alice", "late", "5", "0xlate"), "created_at": T0 + timedelta(31)}
    ledger.submit("DEPOSIT_REQUEST", later)
    assert ledger.results("d0")[-1]["reason"] == "deposit_not_observed"
    assert list(ledger.record("alice").awaiting) == ["ethereum:0xlate:0"]


def test_payouts_in_flight_are_bounded() -> None:
    ledger = PureLedger()
    ledger.submit("BREAKER_CHANGE", breaker("OPEN"))  # every payout is held: none completes
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100000", "0xbig"))
    limit = payouts.MAX_PAYOUTS_IN_FLIGHT
    for n in range(limit + 1):
        ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", f"w{n}", "1"))
    assert ledger.results(f"w{limit - 1}")[-1]["reason"] == "held_by_circuit_breaker"
    assert ledger.results(f"w{limit}")[-1]["reason"] == "too_many_pending_requests"


def test_a_record_stays_one_kafka_message_whatever_its_ids_and_its_payouts_held() -> None:
    # counts alone did not bound the record: 1,000 held payouts with long ids made 2.2 MB,
    # which librdkafka refuses to produce (the worker halted on every restart)
    ledger = PureLedger()
    account = "a" * 128
    ledger.submit("BREAKER_CHANGE", breaker("OPEN"))
    for n in range(300):  # deposits too: their marks are kept (in pages beyond a size)
        ledger.submit("CHAIN_OBSERVATION", observation(account, "1000", f"0x{n:0128x}"[:128]))
    refused_at = None
    for n in range(payouts.MAX_PAYOUTS_IN_FLIGHT):
        request_id = f"{n:0128d}"
        ledger.submit("WITHDRAWAL_REQUEST", withdrawal(account, request_id, "1"))
        assert len(encode_record(ledger.record(account))) < 900_000
        if ledger.results(request_id)[-1]["reason"] == "too_many_pending_requests":
            refused_at = n
            break
    assert refused_at is not None and refused_at < payouts.MAX_PAYOUTS_IN_FLIGHT
    assert ledger.record(account).measured_bytes > marks.FULL_AT_BYTES


def test_a_suspended_source_stops_a_cross_chain_payout_before_converting() -> None:
    ledger = PureLedger()
    ledger.submit("BREAKER_CHANGE", breaker("SUSPENDED", scope="asset:xUSD"))
    ledger.submit("TRANSFER_REQUEST", cross_chain("alice", "x1", "100", "bnk-ref-1"))
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "bnk-ref-1", asset="xUSD"))
    assert ledger.results("x1")[-1]["reason"] == "payouts_suspended"
    record = ledger.record("alice")
    assert (record.balance("xUSD"), record.balance("USDT")) == (100, 0)  # not converted


def test_a_balance_past_what_the_wire_carries_is_refused() -> None:
    ledger = PureLedger()
    big = "60000000000000000000"  # 6 x 10^19: two of them pass 10^20
    ledger.submit("CHAIN_OBSERVATION", observation("alice", big, "0x1"))
    ledger.submit("CHAIN_OBSERVATION", observation("alice", big, "0x2"))
    assert ledger.dead_letters == ["amount_out_of_range"]
    assert ledger.balance("alice") == Decimal(big)


def command(kind: str, account: str, payload: dict, partition: int = -1) -> Command:
    data = codec.encode(catalogue.COMMAND_PAYLOAD_TOPICS[kind], payload)
    decoded = codec.decode(catalogue.COMMAND_PAYLOAD_TOPICS[kind], data)
    command_id = (
        f"deposit:{payload['deposit_id']}"
        if "deposit_id" in payload
        else f"request:{payload['request_id']}"
    )
    return Command(command_id, kind, account, decoded, data, 1, 1_795_000_000_000, -1, partition)


def test_a_command_addressed_to_another_partition_or_an_internal_record_is_refused() -> None:
    deposit = observation("alice", "5", "0x1")
    context = Context(ASSETS)
    wrong = (record_partition("alice") + 1) % catalogue.ACCOUNT_PARTITIONS
    for account, partition, reason in (
        ("alice", wrong, "wrong_partition"),
        (control_key(0), 0, "invalid_field"),  # a deposit into a control record
        ("operator:WEI:assets", -1, "invalid_field"),
    ):
        record = AccountRecord(account)
        try:
            apply(record, command("CHAIN_OBSERVATION", account, deposit, partition), context)
        except Rejected as refused:
            assert refused.reason == reason
        else:
            raise AssertionError(f"{account} on {partition} was applied")
        assert record.ledger == {}


def test_a_command_whose_id_kind_or_payload_disagree_is_refused() -> None:
    # a transfer-credits record is forwarded by intake as it is: one claiming to be a
    # chain observation (with a SEEN payload and any id) credited, then raised KeyError
    context = Context(ASSETS)
    seen = observation("alice", "5", "0x1", status="SEEN")
    forged = command("CHAIN_OBSERVATION", "alice", seen)._replace(command_id="x")
    cross = {**internal_transfer("alice", "x1", "5", "bob"), "kind": "CROSS_CHAIN"}
    cross.update(to_account_id=None, destination_asset="USDT", destination_address=ETH_ADDRESS)
    for bad, reason in (
        (forged, "invalid_field"),
        (command("CHAIN_OBSERVATION", "alice", seen), "invalid_field"),  # SEEN is no command
        (command("CHAIN_OBSERVATION", "bob", observation("alice", "5", "0x2")), "invalid_field"),
        (command("TRANSFER_REQUEST", "alice", cross), "missing_field"),  # no deposit_tx_hash
    ):
        record = AccountRecord(bad.account_id)
        try:
            apply(record, bad, context)
        except Rejected as refused:
            assert refused.reason == reason, (bad, refused)
        else:
            raise AssertionError(f"{bad.command_id} was applied")
        assert record.ledger == {} and record.applied == {} and record.credited == {}


FORGED_UNDER_O = """
from decimal import Decimal

from streams.ledger.errors import LedgerInvariantError
from tests.ledger_inputs import observation
from tests.streams.pure_ledger import PureLedger

ledger = PureLedger()
ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0x1"))
forged = ledger.records["alice"].ledger  # balanced, but alice now owes 5
forged["user:alice:WEI"] += Decimal(10)
forged["operator:WEI:assets"] -= Decimal(10)
try:
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "1", "0x2"))
except LedgerInvariantError as error:
    print("stopped:", error)
else:
    print("applied")
"""


def test_a_broken_invariant_stops_the_ledger_batch_under_python_O() -> None:
    # `assert`s vanish under -O: a forged record must still stop the batch the agent runs
    # (the agent then exits with EXIT_LEDGER_FAILURE and restarts from its watermarks)
    ran = subprocess.run(
        [sys.executable, "-O", "-c", FORGED_UNDER_O],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert "stopped: alice WEI balance -4 < 0" in ran.stdout, ran.stdout + ran.stderr


# -- fuzz: random payloads, within what the wire can carry ------------------------------

wire_amount = st.decimals(
    min_value=Decimal("-1e19"), max_value=Decimal("1e19"), places=18, allow_nan=False
) | st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("1e-18"), Decimal(5), Decimal(10**19)])
asset = st.sampled_from(["WEI", "ETH", "USDT", "xUSD", "NOPAY", "GONE"])
account = st.sampled_from(["alice", "bob", "operator:WEI:assets", "~control:0", "a\n", ""])
request_id = st.sampled_from(["r1", "r2", "r3"])


@st.composite
def hostile_command(draw) -> tuple[str, dict]:
    kind = draw(
        st.sampled_from(
            ["CHAIN_OBSERVATION", "WITHDRAWAL_REQUEST", "DEPOSIT_REQUEST", "TRANSFER_REQUEST"]
            + ["PAYOUT_RESULT", "TRANSFER_CREDIT"]
        )
    )
    who, code, value = draw(account), draw(asset), draw(wire_amount)
    if kind == "CHAIN_OBSERVATION":
        payload = observation(who, "1", f"0x{draw(st.integers(0, 5))}", asset="WEI")
        payload.update(asset=code, amount=value, chain=draw(st.sampled_from(["ethereum", "bank"])))
        payload["status"] = draw(st.sampled_from(["CONFIRMED", "REMOVED"]))
    elif kind == "WITHDRAWAL_REQUEST":
        payload = {**withdrawal(who, draw(request_id), "1"), "asset": code, "amount": value}
    elif kind == "DEPOSIT_REQUEST":
        payload = {**deposit_request(who, draw(request_id), "1", "0x1"), "asset": code}
        payload["amount"] = value
    elif kind in ("TRANSFER_REQUEST", "TRANSFER_CREDIT"):
        payload = {**internal_transfer(who, draw(request_id), "1", "bob"), "asset": code}
        payload["amount"] = value
    else:
        status = draw(st.sampled_from(["CONFIRMED", "FAILED"]))
        fee = draw(st.none() | wire_amount)
        payload = payout_result(who, f"po:{who}:{draw(request_id)}", status)
        payload["network_fee"] = fee
    return kind, payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_command(), min_size=1, max_size=25))
def test_no_payload_crashes_the_ledger_and_a_refused_one_changes_nothing(commands) -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "1000", "0xseed"))
    for kind, payload in commands:
        snapshot = {key: encode_record(r) for key, r in ledger.records.items()}
        refused = len(ledger.dead_letters)
        ledger.submit(kind, payload)  # raises on anything but a refusal
        if len(ledger.dead_letters) > refused and kind != "TRANSFER_REQUEST":
            changed = {
                key
                for key, record in ledger.records.items()
                if snapshot.get(key, encode_record(AccountRecord(key))) != encode_record(record)
            }
            changed = {key for key in changed if not key.startswith(CONTROL_PREFIX)}  # watermarks
            assert not changed, (kind, payload, ledger.dead_letters[-1])
        for record in ledger.records.values():
            check_invariants(record)


def test_two_senders_may_use_one_request_id_for_the_same_receiver() -> None:
    # the credit leg's id was transfer-credit:<request id>: the second sender's credit was
    # refused as a conflicting duplicate, its money left in clearing with no alert
    ledger = PureLedger()
    for sender in ("alice", "bob"):
        ledger.submit("CHAIN_OBSERVATION", observation(sender, "10", f"0x{sender}"))
    ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "r1", "3", "carol"))
    ledger.submit("TRANSFER_REQUEST", internal_transfer("bob", "r1", "4", "carol"))
    assert ledger.dead_letters == []
    assert ledger.balance("carol") == 7 and ledger.ledger_total("clearing:WEI") == 0


def test_a_deposit_already_awaited_by_another_request_is_not_taken_over() -> None:
    ledger = PureLedger()
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d1", "5", "0xaa"))
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d2", "5", "0xaa"))
    assert ledger.results("d2")[-1]["reason"] == "deposit_already_requested"
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xaa"))
    assert ledger.results("d1")[-1]["status"] == "COMPLETED"
    # a later request for the credited deposit completes at once, with what it credited
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d3", "5", "0xaa"))
    assert (ledger.results("d3")[-1]["status"], ledger.results("d3")[-1]["amount"]) == (
        "COMPLETED",
        Decimal(5),
    )


def test_the_sweep_refusing_a_stale_request_leaves_the_current_commands_mark_alone() -> None:
    # the sweep's refusal was written into the mark of the command that ran it: a deposit's
    # mark then held a rejection without an amount, and a later request for that deposit
    # raised TypeError (the worker stopped on every restart)
    ledger = PureLedger()
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d1", "5", "0xnever"))
    ledger.time_ms += 31 * DAY_MS
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "7", "0xlater"))  # runs the sweep
    assert ledger.results("d1")[-1]["reason"] == "deposit_not_observed"
    ledger.submit(
        "DEPOSIT_REQUEST",
        {**deposit_request("alice", "d2", "7", "0xlater"), "created_at": T0 + timedelta(31)},
    )
    assert (ledger.results("d2")[-1]["status"], ledger.results("d2")[-1]["amount"]) == (
        "COMPLETED",
        Decimal(7),
    )
