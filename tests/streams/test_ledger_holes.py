"""A hole in ledger-commands: waited for while it may still fill (the batch reads again from
the watermark), passed once it is settled (the first record after it was written more than
`SETTLED_HOLE_S` ago: no request can still fill it), with a CRITICAL alert. tansu on s3://
leaves such holes when it is killed between moving its watermark and storing a batch."""

from __future__ import annotations

import time
from typing import NamedTuple

from streams.ledger.batch import SETTLED_HOLE_S, apply_batch
from tests.ledger_inputs import ASSETS, observation
from tests.record_auth import AUTH
from tests.streams.pure_ledger import Message, PureLedger, codec
from topics import catalogue
from topics.holes import HoleTimer

CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME


class Written(NamedTuple):
    """A ledger-commands record with the broker's timestamp of when it was written."""

    message: object
    written_ms: int

    def partition(self) -> int:
        return self.message.partition()

    def offset(self) -> int:
        return self.message.offset()

    def value(self) -> bytes:
        return self.message.value()

    def key(self) -> bytes | None:
        return None

    def headers(self):
        return self.message.headers()

    def timestamp(self) -> tuple[int, int]:
        return (CREATE_TIME, self.written_ms)


def deposits_with_a_hole(written_ago_s: float):
    """Two deposits of one account's partition at offsets 0 and 2 (1 was never stored)."""
    ledger = PureLedger()
    [(partition, first)] = ledger.commands_of("CHAIN_OBSERVATION", observation("ann", "1", "0xa1"))
    [(_, second)] = ledger.commands_of("CHAIN_OBSERVATION", observation("ann", "2", "0xa2"))
    written = int((time.time() - written_ago_s) * 1000)
    return ledger, [
        Written(Message(partition, 0, first, written), written),
        Written(Message(partition, 2, second, written), written),
    ]


def balance_of(batch, account: str) -> list:
    updates = [
        codec.decode(topic, encoded)
        for topic, _key, encoded, _headers in batch.outputs
        if topic == catalogue.BALANCE_UPDATES
    ]
    return [u["balance"] for u in updates if u["account_id"] == account]


def alerts_of(batch) -> list[dict]:
    return [
        codec.decode(topic, encoded)
        for topic, _key, encoded, _headers in batch.outputs
        if topic == catalogue.ALERTS
    ]


def test_a_fresh_hole_is_waited_for() -> None:
    ledger, messages = deposits_with_a_hole(written_ago_s=1)
    batch = apply_batch(messages, ledger.records, ASSETS, codec, AUTH, HoleTimer(15.0))
    assert batch.rewind == {messages[0].partition(): 1}  # read again from offset 1
    assert len(balance_of(batch, "ann")) == 1 and alerts_of(batch) == []


def test_a_settled_hole_is_passed_with_a_critical_alert() -> None:
    ledger, messages = deposits_with_a_hole(written_ago_s=SETTLED_HOLE_S + 5)
    batch = apply_batch(messages, ledger.records, ASSETS, codec, AUTH, HoleTimer(15.0))
    assert batch.rewind == {}
    assert len(balance_of(batch, "ann")) == 2  # both deposits credited, once each
    [skipped] = alerts_of(batch)
    assert (skipped["kind"], skipped["severity"]) == ("ledger.hole_skipped", "CRITICAL")
    assert skipped["details"] == {"partition": str(messages[0].partition()), "first": "1",
                                  "last": "1"}  # fmt: skip
    # replayed (the same records, the same hole), the same state: the rule reads only them
    again = apply_batch(messages, {}, ASSETS, codec, AUTH, HoleTimer(15.0))
    assert balance_of(again, "ann") == balance_of(batch, "ann")
