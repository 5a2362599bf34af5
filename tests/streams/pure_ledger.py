"""Drives the ledger without Kafka through the agent's own batch (`streams.ledger.batch`).

Each input becomes the ledger-commands record intake would write (its envelope, its id
from `core.ids`, its account's partition; a breaker change on every partition's control
record), applied one batch at a time over a dict of records. Credit legs the ledger emits
to transfer-credits are applied next, as intake forwards them. What a test reads back is
the decoded outputs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from core import ids
from core.fields import SUSPENSE_ACCOUNT, TREASURY_ACCOUNT
from streams.ledger.batch import apply_batch
from streams.ledger.records import AccountRecord, control_key, record_partition
from streams.ledger.step import Output
from tests.ledger_inputs import ASSETS, T0
from tests.record_auth import AUTH, signed
from topics import catalogue
from topics.codec import SingleObjectCodec
from topics.holes import HoleTimer

codec = SingleObjectCodec()
TOPIC_OF = catalogue.COMMAND_PAYLOAD_TOPICS
COMMAND_ID = {
    "DEPOSIT_REQUEST": lambda p: ids.request_command(p["request_id"]),
    "WITHDRAWAL_REQUEST": lambda p: ids.request_command(p["request_id"]),
    "TRANSFER_REQUEST": lambda p: ids.request_command(p["request_id"]),
    "CHAIN_OBSERVATION": lambda p: ids.deposit_command(
        p["deposit_id"], p["status"], p["block_hash"]
    ),
    "PAYOUT_RESULT": lambda p: ids.payout_result_command(p["payout_id"], p["status"]),
    "TRANSFER_CREDIT": lambda p: ids.transfer_credit(p["account_id"], p["request_id"]),
    "DEPOSIT_ASSIGNMENT": lambda p: ids.assignment(p["deposit_id"]),
    "SWEEP_RESULT": lambda p: ids.sweep_result_command(p["sweep_id"]),
}


class Message(NamedTuple):
    """A ledger-commands record as the batch reads it (a confluent-kafka Message's calls)."""

    at_partition: int
    at_offset: int
    data: bytes
    time_ms: int

    def partition(self) -> int:
        return self.at_partition

    def offset(self) -> int:
        return self.at_offset

    def value(self) -> bytes:
        return self.data

    def key(self) -> bytes | None:
        return None

    def headers(self) -> list[tuple[str, bytes]] | None:
        return signed(catalogue.LEDGER_COMMANDS, None, self.data)

    def timestamp(self) -> tuple[int, int]:
        return (0, self.time_ms)


@dataclass
class PureLedger:
    records: dict[str, AccountRecord] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    time_ms: int = int(T0.timestamp() * 1000)  # the inputs' created_at
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset
    breaker_offset: int = 0
    holes: HoleTimer = field(default_factory=lambda: HoleTimer(15.0))

    def record(self, key: str) -> AccountRecord:
        return self.records.get(key) or AccountRecord(key)

    def envelope(self, kind: str, account: str, payload: bytes, command_id: str) -> bytes:
        envelope = {
            "command_id": command_id,
            "kind": kind,
            "account_id": account,
            "payload": payload,
            "source_topic": TOPIC_OF[kind],
            "source_partition": 0,
            "source_offset": self.breaker_offset if kind == "BREAKER_CHANGE" else 0,
        }
        return codec.encode(catalogue.LEDGER_COMMANDS, envelope)

    def commands_of(self, kind: str, payload: dict[str, Any]) -> list[tuple[int, bytes]]:
        """(partition, ledger-commands value) of one input, as intake writes them."""
        data = codec.encode(TOPIC_OF[kind], payload)
        if kind == "BREAKER_CHANGE":
            self.breaker_offset += 1
            command_id = ids.breaker_command(self.breaker_offset)
            return [
                (p, self.envelope(kind, control_key(p), data, command_id))
                for p in range(catalogue.ACCOUNT_PARTITIONS)
            ]
        decoded = codec.decode(TOPIC_OF[kind], data)
        addressee = {"TRANSFER_CREDIT": decoded.get("to_account_id"),
                     "DEPOSIT_ASSIGNMENT": SUSPENSE_ACCOUNT,
                     "SWEEP_RESULT": TREASURY_ACCOUNT}  # fmt: skip
        account = addressee[kind] if kind in addressee else decoded["account_id"]
        partition = max(record_partition(account), 0)
        return [(partition, self.envelope(kind, account, data, COMMAND_ID[kind](decoded)))]

    def apply(self, partition: int, value: bytes) -> list[Output]:
        """One ledger-commands record, as one batch."""
        offset = self.offsets.get(partition, -1) + 1
        self.offsets[partition] = offset
        self.time_ms += 1
        message = Message(partition, offset, value, self.time_ms)
        batch = apply_batch([message], self.records, ASSETS, codec, AUTH, self.holes)
        for key, record in batch.changed_records():
            if record is None:
                self.records.pop(key, None)
            else:
                self.records[key] = record
        produced = []
        for topic, key, encoded, _headers in batch.outputs:
            value = codec.decode(topic, encoded)
            if topic == catalogue.DEAD_LETTERS:
                self.dead_letters.append(value["reason"])
                continue
            produced.append(Output(topic, key, value))
        return produced

    def submit(self, kind: str, payload: dict[str, Any]) -> list[Output]:
        """Apply one input and every credit leg it causes; returns all their outputs."""
        first = len(self.outputs)
        queue = deque(self.commands_of(kind, payload))
        while queue:
            partition, value = queue.popleft()
            produced = self.apply(partition, value)
            for output in produced:
                if output.topic == catalogue.TRANSFER_CREDITS:  # intake forwards it as it is
                    leg = codec.encode(catalogue.TRANSFER_CREDITS, output.value)
                    queue.append((record_partition(output.value["account_id"]), leg))
            self.outputs.extend(produced)
        return self.outputs[first:]

    def balance(self, account: str, asset: str = "WEI") -> Decimal:
        return self.record(account).balance(asset)

    def ledger_total(self, ledger_account: str) -> Decimal:
        return sum(
            (r.ledger.get(ledger_account, Decimal(0)) for r in self.records.values()), Decimal(0)
        )

    def results(self, request_id: str) -> list[dict]:
        return [
            o.value
            for o in self.outputs
            if o.topic == catalogue.REQUEST_RESULTS and o.key == request_id
        ]

    def of_topic(self, outputs: list[Output], topic: str) -> list[dict]:
        return [o.value for o in outputs if o.topic == topic]
