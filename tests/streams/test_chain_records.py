"""What the ledger implies the operator's wallets hold at a block (pure).

Every movement the ledger makes is placed at its chain event: a deposit at its block (and
counted as unconfirmed while the balance record's head had not confirmed it), a payout at
its transaction's block; a deposit or payout the ledger has not applied yet is in flight.
So a record read at any block while deposits and payouts are under way shows no
difference, and only value the ledger does not know of (a theft, a deposit it never
credited, a credit with no chain event) does.
"""

from __future__ import annotations

from decimal import Decimal

from core import ids
from streams.reconciliation.chain_records import IN_FLIGHT_BLOCKS, ChainRecords, expected_holdings
from topics import catalogue

D = Decimal


def observation(deposit: str, block: int, confirmations: int, amount: str, status="CONFIRMED"):
    return {"deposit_id": deposit, "asset": "ETH", "block_number": block,
            "confirmations": confirmations, "amount": D(amount), "status": status}  # fmt: skip


def balance(height: int, held: str, head: int | None = None, unconfirmed: str = "0"):
    return {"asset": "ETH", "block_number": height, "head": height if head is None else head,
            "balance": D(held), "unconfirmed": D(unconfirmed)}  # fmt: skip


def deposit_cause(deposit: str) -> str:
    return ids.deposit_command(deposit, "CONFIRMED", "")


def payout_cause(payout: str) -> str:
    return ids.payout_result_command(payout, "CONFIRMED")


def records_with(*folds) -> ChainRecords:
    records = ChainRecords()
    for topic, value in folds:
        records.fold(topic, value)
    return records


def difference(record, causes, records) -> Decimal:
    return expected_holdings(record, causes, records).difference


def test_a_deposit_is_placed_at_its_block_and_in_flight_until_credited():
    records = records_with((catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")))
    credited = {deposit_cause("d1"): D(1)}
    assert difference(balance(10, "1"), credited, records) == 0
    assert difference(balance(10, "1"), {}, records) == 0  # confirmed, not yet credited
    assert difference(balance(4, "0"), credited, records) == 0  # a record read before it
    # in its block but below its security level at the record's head: unconfirmed
    late = records_with((catalogue.CHAIN_OBSERVATIONS, observation("d2", 9, 4, "2")))
    record = balance(10, "2", head=10, unconfirmed="2")
    assert difference(record, {deposit_cause("d2"): D(2)}, late) == 0
    assert difference(record, {}, late) == 0


def test_a_deposit_the_ledger_never_credited_becomes_a_surplus():
    records = records_with((catalogue.CHAIN_OBSERVATIONS, observation("dust", 5, 6, "0.001")))
    assert difference(balance(10 + IN_FLIGHT_BLOCKS, "0.001"), {}, records) == 0
    assert difference(balance(11 + IN_FLIGHT_BLOCKS, "0.001"), {}, records) == D("0.001")
    assert difference(balance(12, "3"), {}, ChainRecords()) == 3  # never seen at all


def test_a_payout_is_placed_at_its_transactions_block_and_in_flight_until_settled():
    records = records_with(
        (catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")),
        (catalogue.PAYOUT_RESULTS, {"payout_id": "po:a:1", "tx_hash": "0xAB"}),
        (catalogue.WALLET_OUTFLOWS,
         {"tx_hash": "0xab", "asset": "ETH", "block_number": 12, "amount": D("0.3")}),
    )  # fmt: skip
    settled = {deposit_cause("d1"): D(1), payout_cause("po:a:1"): D("-0.3")}
    assert difference(balance(11, "1"), settled, records) == 0  # before its block
    assert difference(balance(12, "0.7"), settled, records) == 0
    assert difference(balance(12, "0.7"), {deposit_cause("d1"): D(1)}, records) == 0  # mined
    failed = {deposit_cause("d1"): D(1), ids.payout_result_command("po:a:1", "FAILED"): D(0)}
    # rolled back though it was mined: the ledger is above the chain
    assert difference(balance(12, "0.7"), failed, records) == D("-0.3")
    # reported FAILED though its transaction left: in flight for its fee alone, so the
    # deficit shows before the ledger applies the result too
    failure = {"payout_id": "po:a:1", "tx_hash": None, "status": "FAILED",
               "network_fee": D("0.01"), "network_fee_asset": "ETH"}  # fmt: skip
    records.fold(catalogue.PAYOUT_RESULTS, failure)
    assert difference(balance(12, "0.7"), {deposit_cause("d1"): D(1)}, records) == D("-0.29")


def test_what_the_ledger_does_not_know_of_is_a_difference():
    records = records_with(
        (catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")),
        (catalogue.WALLET_OUTFLOWS,  # a transfer no payout recorded: a theft
         {"tx_hash": "0xcd", "asset": "ETH", "block_number": 12, "amount": D("0.4")}),
    )  # fmt: skip
    credited = {deposit_cause("d1"): D(1)}
    assert difference(balance(12, "0.6"), credited, records) == D("-0.4")
    assert [o.tx_hash for o in records.unexplained("ETH", 12)] == ["0xcd"]  # named in alerts
    assert records.unexplained("ETH", 11) == [] and records.unexplained("TOK", 12) == []
    phantom = {**credited, deposit_cause("nowhere"): D(5)}  # a credit of no chain event
    assert difference(balance(11, "1"), phantom, records) == D(-5)
    records.fold(catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 0, "1", "REMOVED"))
    assert difference(balance(13, "0"), credited, records) == D(-1)  # reorged after credit
    assert difference(balance(13, "0"), {}, records) == 0  # removed before it was credited


def test_a_token_payouts_gas_is_placed_with_the_payout():
    records = records_with(
        (catalogue.PAYOUT_RESULTS, {"payout_id": "po:a:t", "tx_hash": "0xef"}),
        (catalogue.WALLET_OUTFLOWS,
         {"tx_hash": "0xef", "asset": "TOK", "block_number": 8, "amount": D(10)}),
        (catalogue.WALLET_OUTFLOWS,
         {"tx_hash": "0xef", "asset": "ETH", "block_number": 8, "amount": D("0.00004")}),
    )  # fmt: skip
    gas = {payout_cause("po:a:t"): D("-0.00004")}
    assert difference(balance(8, "0.99996"), {"capital": D(1)}, records) == 0  # in flight
    assert difference(balance(8, "0.99996"), {"capital": D(1), **gas}, records) == 0
    assert difference(balance(7, "1"), {"capital": D(1), **gas}, records) == 0


def sweep(status: str, fee: str | None = None, amount: str = "0.99") -> dict:
    return {"sweep_id": "ethereum:0xd1:0", "tx_hash": "0xSW", "asset": "ETH",
            "amount": D(amount), "status": status,
            "network_fee": None if fee is None else D(fee)}  # fmt: skip


def test_a_sweep_moves_only_its_fee_out_of_the_wallets_and_is_recorded():
    # 1 ETH deposited, swept to the hot wallet in block 20: 0.99 arrives, 0.01 is gas
    outflow = {"tx_hash": "0xsw", "asset": "ETH", "block_number": 20, "amount": D("1")}
    records = records_with(
        (catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")),
        (catalogue.SWEEP_RESULTS, sweep("SUBMITTED")),
    )
    credited = {deposit_cause("d1"): D(1)}
    assert records.recorded("0xsw") and records.unexplained("ETH", 30) == []
    assert difference(balance(19, "1"), credited, records) == 0  # recorded, not mined
    records.fold(catalogue.WALLET_OUTFLOWS, outflow)
    assert difference(balance(20, "0.99"), credited, records) == 0  # in flight: its fee
    records.fold(catalogue.SWEEP_RESULTS, sweep("CONFIRMED", "0.01"))
    settled = {**credited, ids.sweep_result_command("ethereum:0xd1:0"): D("-0.01")}
    assert difference(balance(20, "0.99"), settled, records) == 0
    assert difference(balance(19, "1"), settled, records) == 0  # its fee placed at block 20
    assert difference(balance(20, "0.98"), settled, records) == D("-0.01")  # value missing
    # a newer SUBMITTED (a redelivery) does not reopen a settled sweep
    records.fold(catalogue.SWEEP_RESULTS, sweep("SUBMITTED"))
    assert records.sweeps["ethereum:0xd1:0"].status == "CONFIRMED"


def test_a_reverted_sweep_is_in_flight_for_its_fee_alone():
    outflow = {"tx_hash": "0xsw", "asset": "ETH", "block_number": 20, "amount": D("0.01")}
    records = records_with(
        (catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")),
        (catalogue.SWEEP_RESULTS, sweep("SUBMITTED")),
        (catalogue.WALLET_OUTFLOWS, outflow),
    )
    credited = {deposit_cause("d1"): D(1)}
    assert difference(balance(20, "0.99"), credited, records) == 0  # before FAILED is read
    records.fold(catalogue.SWEEP_RESULTS, sweep("FAILED", "0.01"))
    assert difference(balance(20, "0.99"), credited, records) == 0


def test_a_sweep_the_ledger_never_settles_shows_its_fee_after_the_window():
    outflow = {"tx_hash": "0xsw", "asset": "ETH", "block_number": 20, "amount": D("1")}
    records = records_with(
        (catalogue.CHAIN_OBSERVATIONS, observation("d1", 5, 6, "1")),
        (catalogue.SWEEP_RESULTS, sweep("SUBMITTED")),
        (catalogue.WALLET_OUTFLOWS, outflow),
        (catalogue.SWEEP_RESULTS, sweep("CONFIRMED", "0.01")),  # a result the ledger refused
    )
    credited = {deposit_cause("d1"): D(1)}
    assert difference(balance(20 + IN_FLIGHT_BLOCKS, "0.99"), credited, records) == 0
    assert difference(balance(21 + IN_FLIGHT_BLOCKS, "0.99"), credited, records) == D("-0.01")
