"""The ledger's state transitions, exhaustively and without Kafka."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core.fields import TREASURY_ACCOUNT
from streams.ledger.commands import command_fingerprint
from streams.ledger.errors import LedgerInvariantError
from streams.ledger.invariants import check_invariants
from streams.ledger.marks import CREDITED_MARKS_KEPT, IDEMPOTENCY_WINDOW_MS
from streams.ledger.records import (
    AccountRecord,
    Payout,
    decode_record,
    encode_record,
    mark_page_key,
)
from tests.ledger_inputs import (
    T0,
    breaker,
    cross_chain,
    deposit_request,
    internal_transfer,
    observation,
    payout_result,
    withdrawal,
)
from tests.streams.pure_ledger import PureLedger
from topics import catalogue


def postings_of(outputs, kind):
    [entry] = [
        o.value for o in outputs if o.topic == catalogue.LEDGER_ENTRIES and o.value["kind"] == kind
    ]
    return [(p["ledger_account"], p["direction"], p["amount"]) for p in entry["postings"]]


def test_storiqa_scenario_deposit_withdraw_with_fees_then_transfers() -> None:
    ledger = PureLedger()
    out = ledger.submit("CHAIN_OBSERVATION", observation("alice", "9", "0xd1"))
    assert postings_of(out, "deposit") == [
        ("operator:WEI:assets", "DEBIT", Decimal(9)),
        ("user:alice:WEI", "CREDIT", Decimal(9)),
    ]
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "3"))
    assert ledger.results("w1")[-1]["status"] == "ACCEPTED"
    record = ledger.record("alice")
    assert (record.balance("WEI"), record.reserved_of("WEI"), record.available("WEI")) == (9, 5, 4)
    out = ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "1"))
    assert postings_of(out, "withdrawal") == [
        ("user:alice:WEI", "DEBIT", Decimal(3)),
        ("operator:WEI:assets", "CREDIT", Decimal(3)),
    ]
    assert postings_of(out, "withdrawal_fee") == [
        ("user:alice:WEI", "DEBIT", Decimal(2)),
        ("operator:WEI:fees", "CREDIT", Decimal(2)),
    ]
    assert postings_of(out, "network_fee_correction") == [
        ("operator:WEI:fees", "DEBIT", Decimal(1)),
        ("operator:WEI:assets", "CREDIT", Decimal(1)),
    ]
    assert ledger.results("w1")[-1]["status"] == "COMPLETED"
    # 9 - 3 - 2 leaves 4: a transfer of 5 is refused, one of 4 goes through
    ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "t1", "5", "bob"))
    assert (ledger.results("t1")[-1]["status"], ledger.results("t1")[-1]["reason"]) == (
        "REJECTED",
        "insufficient_funds",
    )
    ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "t2", "4", "bob"))
    assert ledger.results("t2")[-1]["status"] == "COMPLETED"
    assert (ledger.balance("alice"), ledger.balance("bob")) == (0, 4)
    # operator assets = what the wallet holds: 9 in, 3 paid out, 1 network fee
    assert -ledger.ledger_total("operator:WEI:assets") == -5
    assert -ledger.ledger_total("operator:WEI:fees") == 1
    assert ledger.ledger_total("clearing:WEI") == 0
    for record in ledger.records.values():
        check_invariants(record)


def test_an_erc20_payouts_gas_is_paid_from_the_eth_fee_account() -> None:
    """The gas of a token payout is ETH the hot wallet spent: the operator's ETH, not the
    token's, and at ETH's scale (the token has 6 decimals, the gas 18)."""
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "0xd1", asset="USDT"))
    for request_id in ("w1", "w2", "w3"):
        ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", request_id, "10", asset="USDT"))
    gas = "0.000042000000000001"
    paid = payout_result("alice", "po:alice:w1", "CONFIRMED", gas)
    out = ledger.submit("PAYOUT_RESULT", {**paid, "network_fee_asset": "ETH"})
    assert postings_of(out, "network_fee_correction") == [
        ("operator:ETH:fees", "DEBIT", Decimal(gas)),
        ("operator:ETH:assets", "CREDIT", Decimal(gas)),
    ]
    assert [e["asset"] for e in ledger.of_topic(out, catalogue.LEDGER_ENTRIES)] == [
        "USDT", "USDT", "ETH"]  # fmt: skip
    assert ledger.ledger_total("operator:USDT:fees") == Decimal("-1.01")  # the user's fee
    updates = ledger.of_topic(out, catalogue.BALANCE_UPDATES)
    assert [u["asset"] for u in updates] == ["USDT"]  # alice's ETH did not change
    # a reverted transaction burnt gas too: the operator pays it, the user a failure fee
    reverted = payout_result("alice", "po:alice:w2", "FAILED", "0.00003", reason="reverted")
    out = ledger.submit("PAYOUT_RESULT", {**reverted, "network_fee_asset": "ETH"})
    assert postings_of(out, "network_fee_correction")[0] == (
        "operator:ETH:fees", "DEBIT", Decimal("0.00003"))  # fmt: skip
    assert ledger.ledger_total("operator:ETH:fees") == Decimal(gas) + Decimal("0.00003")
    # a fee said to be in a coin that is not the chain's own is refused, nothing posted
    for wrong in ("WEI", "BTC", "NOSUCH"):
        ledger.dead_letters.clear()
        out = ledger.submit("PAYOUT_RESULT", {**paid, "payout_id": "po:alice:w3",
                                              "network_fee_asset": wrong})  # fmt: skip
        assert ledger.dead_letters == ["unknown_asset"], wrong
        assert ledger.of_topic(out, catalogue.LEDGER_ENTRIES) == []
    assert ledger.results("w3")[-1]["status"] == "ACCEPTED"  # still open, still reserved
    for record in ledger.records.values():
        check_invariants(record)


def held_payout(amount: str) -> Payout:
    return Payout(
        "po:1", "w1", "withdrawal", "WEI", Decimal(amount), Decimal(0), "0xd", "PREPARED", 0
    )


@pytest.mark.parametrize(
    ("ledger", "reserved", "payouts", "message"),
    [
        ({"operator:WEI:assets": Decimal(5), "user:a:WEI": Decimal(-4)}, {}, {}, "unbalanced"),
        ({"operator:WEI:assets": Decimal(-2), "user:a:WEI": Decimal(2)}, {}, {}, "balance -2 < 0"),
        (
            {"operator:WEI:assets": Decimal(3), "user:a:WEI": Decimal(-3)},
            {"WEI": Decimal(4)},
            {"po:1": held_payout("4")},
            "reserved 4",
        ),
        ({}, {"BTC": Decimal(1)}, {"po:1": held_payout("1")}, "reserved 1"),  # no BTC at all
        (
            {"operator:WEI:assets": Decimal(3), "user:a:WEI": Decimal(-3)},
            {"WEI": Decimal(2)},
            {},
            "reservations != payouts",
        ),
    ],
)
def test_a_record_that_breaks_an_invariant_stops_the_ledger(
    ledger: dict, reserved: dict, payouts: dict, message: str
) -> None:
    record = AccountRecord("a", ledger=ledger, reserved=reserved, payouts=payouts)
    with pytest.raises(LedgerInvariantError, match=message):
        check_invariants(record)
    fine = AccountRecord("a", ledger={"operator:WEI:assets": Decimal(3), "user:a:WEI": Decimal(-3)})
    check_invariants(fine)


def test_a_deposit_id_is_credited_once_whatever_repeats() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "7", "0xd1"))
    again = {**observation("alice", "7", "0xd1"), "confirmations": 9, "block_hash": "0xb2"}
    assert ledger.submit("CHAIN_OBSERVATION", again) == []
    assert ledger.balance("alice") == 7
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "8", "0xd1"))  # same id, other amount
    assert ledger.dead_letters == ["conflicting_duplicate"]
    assert ledger.balance("alice") == 7


def test_marks_are_forgotten_after_the_window_but_no_repeat_ever_applies_twice() -> None:
    ledger = PureLedger(time_ms=int(T0.timestamp() * 1000))  # requests are made at T0
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "20", "0xd1"))
    ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "t1", "2", "bob"))
    # a year ahead of the ledger's clock (a careless producer): refused, its mark's window
    # would start a year late; a few minutes ahead (a client's clock): its window starts then
    far = {**withdrawal("alice", "w0", "3"), "created_at": T0 + timedelta(days=365)}
    ledger.submit("WITHDRAWAL_REQUEST", far)
    assert ledger.results("w0")[-1]["reason"] == "created_in_the_future"
    ahead = {**withdrawal("alice", "w1", "3"), "created_at": T0 + timedelta(minutes=4)}
    ledger.submit("WITHDRAWAL_REQUEST", ahead)
    ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "1"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w2", "4"))  # stays prepared
    ledger.time_ms += IDEMPOTENCY_WINDOW_MS + 2 * 3600 * 1000
    for account in ("alice", "bob"):  # their first commands after the window: a sweep
        ledger.submit("CHAIN_OBSERVATION", observation(account, "1", f"0x{account}"))
    alice, bob = ledger.record("alice"), ledger.record("bob")
    assert "request:t1" not in alice.applied  # an ordinary request, past its window
    assert "request:w1" not in alice.applied  # its window started 4 minutes late: past too
    assert "po:alice:w1" not in alice.payouts  # a final payout, past the window
    assert "request:w2" in alice.applied
    assert "po:alice:w2" in alice.payouts  # prepared: its result may come however late
    assert (
        "deposit:ethereum:0xd1:0" in alice.credited and "transfer-credit:alice:t1" in bob.credited
    )
    balances = [(r.balance("WEI"), r.reserved_of("WEI")) for r in (alice, bob)]
    assert balances == [(Decimal(20 - 2 - 3 - 2 + 1), Decimal(6)), (Decimal(3), Decimal(0))]

    ledger.submit("CHAIN_OBSERVATION", observation("alice", "20", "0xd1"))
    ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "t1", "2", "bob"))
    ledger.submit("TRANSFER_CREDIT", internal_transfer("alice", "t1", "2", "bob"))  # the leg
    ledger.submit("WITHDRAWAL_REQUEST", ahead)
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w2", "4"))
    again = [(r.balance("WEI"), r.reserved_of("WEI")) for r in (alice, bob)]
    assert again == balances
    assert ledger.results("t1")[-1]["reason"] == "request_expired"  # its mark is gone
    assert [r["status"] for r in ledger.results("w1")] == ["ACCEPTED", "COMPLETED", "REJECTED"]
    assert ledger.results("w1")[-1]["reason"] == "request_expired"  # never paid twice
    assert [r["status"] for r in ledger.results("w2")] == ["ACCEPTED", "ACCEPTED"]
    assert ledger.dead_letters == []


def test_an_account_with_many_deposits_keeps_a_bounded_record_and_credits_each_once() -> None:
    ledger = PureLedger()
    deposits = 5_000
    for n in range(deposits):
        ledger.submit("CHAIN_OBSERVATION", observation("hot", "1", f"0x{n:06d}"))
    record = ledger.record("hot")
    pages = [ledger.records[mark_page_key("hot", n)] for n in range(record.mark_pages)]
    assert record.mark_pages >= 2 and len(record.credited) <= CREDITED_MARKS_KEPT
    assert sum(len(page.credited) for page in [record, *pages]) == deposits
    assert len(encode_record(record)) < 500_000  # one changelog message, below Kafka's 1 MB
    assert [decode_record(encode_record(page)) for page in pages] == pages

    entries_before = len(ledger.of_topic(ledger.outputs, catalogue.LEDGER_ENTRIES))
    for n in range(deposits):  # every deposit again, the oldest first (sealed the longest)
        ledger.submit("CHAIN_OBSERVATION", observation("hot", "1", f"0x{n:06d}"))
    assert ledger.balance("hot") == deposits
    assert len(ledger.of_topic(ledger.outputs, catalogue.LEDGER_ENTRIES)) == entries_before
    ledger.submit("CHAIN_OBSERVATION", observation("hot", "2", "0x000000"))  # other amount
    assert ledger.dead_letters == ["conflicting_duplicate"]
    ledger.submit("DEPOSIT_REQUEST", deposit_request("hot", "d1", "1", "0x000001"))
    assert (ledger.results("d1")[-1]["status"], ledger.results("d1")[-1]["amount"]) == (
        "COMPLETED",
        Decimal(1),
    )
    removed = observation("hot", "1", "0x000002", status="REMOVED", block_hash="0xb2")
    alerts = ledger.of_topic(ledger.submit("CHAIN_OBSERVATION", removed), catalogue.ALERTS)
    assert [a["kind"] for a in alerts] == ["deposit.reorged_after_credit"]
    assert ledger.balance("hot") == deposits


def test_an_account_with_many_withdrawals_keeps_a_bounded_record_until_they_expire() -> None:
    ledger = PureLedger(time_ms=int(T0.timestamp() * 1000))
    withdrawals = 3_000
    ledger.submit("CHAIN_OBSERVATION", observation("busy", str(3 * withdrawals + 10), "0xd1"))
    for n in range(withdrawals):  # 1 each, fee 2
        ledger.submit("WITHDRAWAL_REQUEST", withdrawal("busy", f"w{n:05d}", "1"))
        ledger.submit("PAYOUT_RESULT", payout_result("busy", f"po:busy:w{n:05d}", "CONFIRMED"))
    record = ledger.record("busy")
    pages = [ledger.records[key] for key in record.final_pages]
    assert len(pages) >= 2 and len(encode_record(record)) < 500_000
    assert sum(len(page.applied) for page in [record, *pages]) == 2 * withdrawals
    assert sum(len(page.payouts) for page in [record, *pages]) == withdrawals
    assert (ledger.balance("busy"), record.reserved_of("WEI")) == (10, 0)

    # the oldest, sealed the longest: repeats re-emit, a contradicting result is refused
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("busy", "w00000", "1"))
    ledger.submit("PAYOUT_RESULT", payout_result("busy", "po:busy:w00000", "CONFIRMED"))
    assert [r["status"] for r in ledger.results("w00000")] == ["ACCEPTED"] + ["COMPLETED"] * 3
    ledger.submit("PAYOUT_RESULT", payout_result("busy", "po:busy:w00000", "FAILED"))
    assert ledger.dead_letters == ["conflicting_payout_result"]
    record = ledger.record("busy")
    assert (ledger.balance("busy"), record.reserved_of("WEI")) == (10, 0)

    # past the window the pages go; a repeat is then an expired request, never a new payout
    ledger.time_ms += IDEMPOTENCY_WINDOW_MS + 2 * 3600 * 1000
    ledger.submit("CHAIN_OBSERVATION", observation("busy", "1", "0xd2"))
    record = ledger.record("busy")
    assert record.final_pages == {}
    assert not [key for key in ledger.records if key.startswith("~final:")]
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("busy", "w00001", "1"))
    assert ledger.results("w00001")[-1]["reason"] == "request_expired"
    ledger.time_ms -= IDEMPOTENCY_WINDOW_MS  # a command stamped by a clock running behind
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("busy", "w00002", "1"))
    assert ledger.results("w00002")[-1]["reason"] == "request_expired"  # by the record's clock
    assert (ledger.balance("busy"), record.reserved_of("WEI")) == (11, 0)


def test_a_deposit_request_completes_when_its_transfer_confirms() -> None:
    ledger = PureLedger()
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d1", "5", "0xAB"))
    assert ledger.results("d1")[-1]["status"] == "ACCEPTED"
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xab"))
    assert ledger.results("d1")[-1]["status"] == "COMPLETED"
    assert ledger.results("d1")[-1]["amount"] == 5
    # announced after the credit: completed at once
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "2", "0xcd"))
    ledger.submit("DEPOSIT_REQUEST", deposit_request("alice", "d2", "2", "0xcd"))
    assert ledger.results("d2")[-1]["status"] == "COMPLETED"
    assert ledger.balance("alice") == 7


def test_a_reorged_credited_deposit_alerts_and_is_never_credited_twice() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xd1"))
    out = ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xd1", status="REMOVED"))
    [alert] = ledger.of_topic(out, catalogue.ALERTS)
    assert alert["kind"] == "deposit.reorged_after_credit"
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xd1", block_hash="0xb9"))
    assert ledger.balance("alice") == 5


def test_a_failed_payout_rolls_back_with_its_failure_fee_exactly_once() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "10", "0xd1"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "4"))
    out = ledger.submit(
        "PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "FAILED", reason="reverted")
    )
    assert postings_of(out, "failure_fee") == [
        ("user:alice:WEI", "DEBIT", Decimal(1)),
        ("operator:WEI:fees", "CREDIT", Decimal(1)),
    ]
    assert ledger.results("w1")[-1]["status"] == "FAILED"
    assert ledger.results("w1")[-1]["reason"] == "reverted"
    record = ledger.record("alice")
    assert (record.balance("WEI"), record.reserved_of("WEI")) == (9, 0)
    # the same report again changes nothing; the opposite outcome is refused
    assert (
        ledger.submit(
            "PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "FAILED", reason="reverted")
        )
        != []
    )
    ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:w1", "CONFIRMED", "1"))
    assert ledger.dead_letters == ["conflicting_payout_result"]
    [alert] = ledger.of_topic(ledger.outputs, catalogue.ALERTS)
    assert (alert["kind"], alert["severity"]) == ("payout.conflicting_result", "CRITICAL")
    assert (ledger.balance("alice"), ledger.record("alice").reserved_of("WEI")) == (9, 0)


def test_a_refused_command_leaves_no_mark_so_its_repeat_applies_later() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "10", "0xd1"))
    # the executor's report overtook the withdrawal (they reach intake on different topics)
    early = payout_result("alice", "po:alice:w1", "CONFIRMED", "1")
    ledger.submit("PAYOUT_RESULT", early)
    assert ledger.dead_letters == ["unknown_payout"]
    assert "payout:po:alice:w1:confirmed" not in ledger.record("alice").applied
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "3"))
    ledger.submit("PAYOUT_RESULT", early)  # reported again: now it commits
    assert [r["status"] for r in ledger.results("w1")] == ["ACCEPTED", "COMPLETED"]
    record = ledger.record("alice")
    assert (record.balance("WEI"), record.reserved_of("WEI")) == (5, 0)


def test_a_duplicate_request_changes_nothing_and_reemits_its_result() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "10", "0xd1"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "4"))
    first = ledger.results("w1")[-1]
    again = ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "4"))
    assert [o.topic for o in again] == [catalogue.REQUEST_RESULTS]
    assert again[0].value == first
    assert ledger.record("alice").reserved_of("WEI") == 6
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "5"))
    assert ledger.dead_letters == ["conflicting_duplicate"]


def test_unknown_payouts_and_refused_payouts() -> None:
    ledger = PureLedger()
    ledger.submit("PAYOUT_RESULT", payout_result("alice", "po:alice:nothing", "CONFIRMED", "1"))
    assert ledger.dead_letters == ["unknown_payout"]
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "5", "0xd1", asset="NOPAY"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "1", asset="NOPAY"))
    assert ledger.results("w1")[-1]["reason"] == "payouts_disabled"


def test_significant_suspends_new_payouts_critical_holds_them_until_reset() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "20", "0xd1"))
    ledger.submit("BREAKER_CHANGE", breaker("SUSPENDED", "asset:WEI"))
    ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w1", "3"))
    assert ledger.results("w1")[-1]["reason"] == "payouts_suspended"
    ledger.submit("BREAKER_CHANGE", breaker("CLOSED", "asset:WEI"))
    ledger.submit("BREAKER_CHANGE", breaker("OPEN"))
    out = ledger.submit("WITHDRAWAL_REQUEST", withdrawal("alice", "w2", "3"))
    assert ledger.results("w2")[-1]["status"] == "ACCEPTED"
    assert ledger.of_topic(out, catalogue.PAYOUT_COMMANDS) == []  # held, funds reserved
    assert ledger.record("alice").reserved_of("WEI") == 5
    out = ledger.submit("BREAKER_CHANGE", breaker("CLOSED"))
    [command] = ledger.of_topic(out, catalogue.PAYOUT_COMMANDS)
    assert command["payout_id"] == "po:alice:w2"


def test_internal_transfer_goes_through_clearing_and_credits_once() -> None:
    ledger = PureLedger()
    ledger.submit("CHAIN_OBSERVATION", observation("alice", "10", "0xd1"))
    out = ledger.submit("TRANSFER_REQUEST", internal_transfer("alice", "t1", "6", "bob"))
    assert postings_of(out, "transfer_out") == [
        ("user:alice:WEI", "DEBIT", Decimal(6)),
        ("clearing:WEI", "CREDIT", Decimal(6)),
    ]
    assert postings_of(out, "transfer_in") == [
        ("clearing:WEI", "DEBIT", Decimal(6)),
        ("user:bob:WEI", "CREDIT", Decimal(6)),
    ]
    assert (ledger.balance("alice"), ledger.balance("bob")) == (4, 6)
    assert ledger.ledger_total("clearing:WEI") == 0


def test_cross_chain_transfer_converts_one_to_one_and_pays_out() -> None:
    ledger = PureLedger()
    ledger.submit("TRANSFER_REQUEST", cross_chain("alice", "x1", "100", "bnk-ref-1"))
    assert ledger.results("x1")[-1]["status"] == "ACCEPTED"
    out = ledger.submit("CHAIN_OBSERVATION", observation("alice", "100", "bnk-ref-1", asset="xUSD"))
    [command] = ledger.of_topic(out, catalogue.PAYOUT_COMMANDS)
    assert (command["asset"], command["amount"], command["fee"]) == (
        "USDT",
        Decimal("98.9"),  # 100 less the USDT fee: 1 + 0.1%
        Decimal("1.1"),
    )
    record = ledger.record("alice")
    assert (record.balance("xUSD"), record.balance("USDT"), record.reserved_of("USDT")) == (
        0,
        100,
        100,
    )
    ledger.submit("PAYOUT_RESULT", payout_result("alice", command["payout_id"], "CONFIRMED"))
    assert ledger.results("x1")[-1]["status"] == "COMPLETED"
    assert ledger.record("alice").balance("USDT") == 0
    assert -ledger.ledger_total("operator:USDT:fees") == Decimal("1.1")


def test_a_payout_result_from_before_network_fee_asset_is_the_same_command() -> None:
    """A result written before the field existed and redelivered after an upgrade has the
    fingerprint its mark was made with: it is a repeat, not a conflicting duplicate."""
    result = payout_result("alice", "po:alice:w1", "CONFIRMED", "1")
    old = SimpleNamespace(kind="PAYOUT_RESULT", payload=result)
    new = SimpleNamespace(kind="PAYOUT_RESULT", payload={**result, "network_fee_asset": None})
    in_eth = SimpleNamespace(kind="PAYOUT_RESULT", payload={**result, "network_fee_asset": "ETH"})
    assert command_fingerprint(old) == command_fingerprint(new) != command_fingerprint(in_eth)


def sweep_result(status: str, fee: str | None, fee_asset: str = "ETH") -> dict:
    return {
        "sweep_id": "ethereum:0xd1:0", "chain": "ethereum", "asset": "ETH",
        "from_address": "0xd1", "to_address": "0xh0", "to_role": "HOT",
        "amount": Decimal("0.99"), "status": status, "tx_hash": "0xsw", "nonce": 0,
        "raw_transaction": "0x00", "network_fee": None if fee is None else Decimal(fee),
        "network_fee_asset": fee_asset, "reason": None, "detail": None, "reported_at": T0,
    }  # fmt: skip


def test_a_sweeps_fee_is_the_operators_posted_once_per_sweep() -> None:
    """A sweep keeps its value in the operator's wallets: only its network fee leaves
    operator assets, posted on the treasury record once, whatever comes again."""
    ledger = PureLedger()
    out = ledger.submit("SWEEP_RESULT", sweep_result("CONFIRMED", "0.000021"))
    assert postings_of(out, "sweep_network_fee") == [
        ("operator:ETH:fees", "DEBIT", Decimal("0.000021")),
        ("operator:ETH:assets", "CREDIT", Decimal("0.000021")),
    ]
    assert [e["account_id"] for e in ledger.of_topic(out, catalogue.LEDGER_ENTRIES)] == [
        TREASURY_ACCOUNT]  # fmt: skip
    assert ledger.of_topic(out, catalogue.BALANCE_UPDATES) == []  # nobody's balance moved
    again = ledger.submit("SWEEP_RESULT", sweep_result("CONFIRMED", "0.000021"))
    assert ledger.of_topic(again, catalogue.LEDGER_ENTRIES) == []  # a duplicate
    assert ledger.dead_letters == []
    for other in (sweep_result("FAILED", "0.000021"), sweep_result("CONFIRMED", "0.5")):
        out = ledger.submit("SWEEP_RESULT", other)  # a second, different result of one sweep
        assert ledger.dead_letters[-1] == "conflicting_duplicate"
        assert ledger.of_topic(out, catalogue.LEDGER_ENTRIES) == []
    assert ledger.ledger_total("operator:ETH:fees") == Decimal("0.000021")
    for wrong in ("USDT", "BTC", "NOSUCH"):  # a fee in anything but the chain's own coin
        result = {**sweep_result("CONFIRMED", "0.1", wrong), "sweep_id": f"ethereum:0xd2:{wrong}"}
        out = ledger.submit("SWEEP_RESULT", result)
        assert ledger.dead_letters[-1] == "unknown_asset", wrong
        assert ledger.of_topic(out, catalogue.LEDGER_ENTRIES) == []
    submitted = {**sweep_result("SUBMITTED", None), "sweep_id": "ethereum:0xd3:0"}
    ledger.submit("SWEEP_RESULT", submitted)  # intake never sends it; the ledger refuses it
    assert ledger.dead_letters[-1] == "invalid_field"
    for record in ledger.records.values():
        check_invariants(record)
