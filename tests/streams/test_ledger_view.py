"""The ledger view: transactions the worker emits count as they will be read back, once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from confluent_kafka import Message

from streams.ledger.batch import SEQUENCE_HEADER
from streams.ledger_view import LedgerNets
from topics import catalogue
from topics.codec import SingleObjectCodec

codec = SingleObjectCodec()


def transaction(account: str, sequence: int, asset: str, amount: Decimal) -> dict:
    return {
        "transaction_id": f"deposit:bank:gb33bukb20201555555555:REF{sequence}:0:deposit",
        "account_id": account,
        "kind": "deposit",
        "cause_id": f"deposit:bank:gb33bukb20201555555555:REF{sequence}:0",
        "asset": asset,
        "postings": [
            {"ledger_account": f"operator:{asset}:assets", "direction": "DEBIT", "amount": amount},
            {"ledger_account": f"user:{account}:{asset}", "direction": "CREDIT", "amount": amount},
        ],
        "sequence": sequence,
        "previous_hash": "0" * 64,
        "hash": "1" * 64,
        "created_at": datetime(2026, 11, 21, 12, 0, 0, 123000, tzinfo=UTC),
    }


def read_back(value: dict) -> dict:
    wire = codec.encode(catalogue.LEDGER_ENTRIES, value)
    return codec.decode(catalogue.LEDGER_ENTRIES, wire)


def test_an_emitted_transaction_counts_as_its_read_back_form() -> None:
    # a bank-backed asset (movements kept too), a large amount and the wire's full scale
    emitted = [
        transaction("alice", 1, "xUSD", Decimal("123456789012345678.25")),
        transaction("alice", 2, "xUSD", Decimal("0.000000000000000001")),
        transaction("bob", 1, "WEI", Decimal("5000000000000000000")),
    ]
    counted, decoded = LedgerNets(frozenset({"xUSD"})), LedgerNets(frozenset({"xUSD"}))
    for value in emitted:
        counted.add_emitted(value)
        decoded.add(catalogue.LEDGER_ENTRIES, read_back(value))
    assert {k: str(v) for k, v in counted.nets.items()} == {
        k: str(v) for k, v in decoded.nets.items()
    }
    assert counted.nets["operator:xUSD:assets"] == Decimal("123456789012345678.250000000000000001")
    assert counted.sequences == decoded.sequences == {"alice": 2, "bob": 1}
    assert counted.bank_movements == decoded.bank_movements
    assert len(counted.bank_movements["xUSD"]) == 2
    assert counted.bank_references == decoded.bank_references
    assert counted.transactions == decoded.transactions == 3


def test_an_entry_counted_when_emitted_is_skipped_when_read_back_others_are_not() -> None:
    nets = LedgerNets(frozenset({"xUSD"}))
    nets.add_emitted(transaction("alice", 1, "WEI", Decimal(1)))
    nets.add_emitted(transaction("alice", 2, "WEI", Decimal(1)))

    def entry(key: bytes, headers: list | None) -> Message:
        return Message(topic="t", partition=0, offset=0, key=key, value=b"", headers=headers)

    assert nets.counted(entry(b"alice", [(SEQUENCE_HEADER, b"2")]))
    assert nets.counted(entry(b"alice", [(SEQUENCE_HEADER, b"1")]))
    assert not nets.counted(entry(b"alice", [(SEQUENCE_HEADER, b"3")]))  # not yet counted
    assert not nets.counted(entry(b"bob", [(SEQUENCE_HEADER, b"1")]))  # another account
    assert not nets.counted(entry(b"alice", None))  # no header (older entries): decoded


def test_a_transaction_read_and_emitted_again_counts_once() -> None:
    nets = LedgerNets(frozenset({"xUSD"}))
    value = transaction("alice", 1, "WEI", Decimal(7))
    nets.add(catalogue.LEDGER_ENTRIES, read_back(value))  # read from the topic (a replay)
    nets.add_emitted(value)  # then emitted again by the ledger, same sequence
    assert nets.nets["user:alice:WEI"] == Decimal(-7)
    assert nets.transactions == 1


def test_an_emitted_transaction_the_view_is_not_ready_for_is_counted_when_read() -> None:
    # a worker starting (or taking over partitions) emits sequence 3 before its view has
    # read sequences 1 and 2 of that account: counting 3 now would make the view skip them
    nets = LedgerNets(frozenset({"xUSD"}))
    chain = [transaction("alice", n, "WEI", Decimal(n)) for n in (1, 2, 3)]
    nets.add_emitted(chain[2])
    assert nets.transactions == 0
    for value in chain:  # then read back from the topic, in order
        nets.add(catalogue.LEDGER_ENTRIES, read_back(value))
    assert nets.nets["user:alice:WEI"] == Decimal(-6)
    assert nets.transactions == 3
    nets.add_emitted(transaction("alice", 4, "WEI", Decimal(4)))  # the next one: counted
    assert nets.nets["user:alice:WEI"] == Decimal(-10)
