"""Drives `streams.ledger_core` without Kafka: one ordered command log, as the agent sees it.

Credit legs the ledger emits to ledger-commands are appended to the log, and breaker
changes reach the control record and release held payouts, as in `streams.ledger`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.ledger_core import Command, Context, Output, Rejected, apply, release_held_payouts
from streams.records import AccountRecord, control_key
from tests.ledger_inputs import ASSETS, T0
from tokengine import ids
from topics import catalogue
from topics.codec import SingleObjectCodec

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
}


@dataclass
class PureLedger:
    records: dict[str, AccountRecord] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)  # as applied, in log order
    offset: int = 0
    time_ms: int = int(T0.timestamp() * 1000)  # the inputs' created_at
    breaker_offset: int = 0

    def record(self, key: str) -> AccountRecord:
        return self.records.setdefault(key, AccountRecord(key))

    def context(self) -> Context:
        control = self.record(control_key(0))
        breaker = {scope: state for scope, (state, _) in control.breaker.items()}
        return Context(ASSETS, breaker, self)

    def page(self, key: str) -> AccountRecord | None:  # records' pages, beside them
        return self.records.get(key)

    def add_page(self, page: AccountRecord) -> None:
        self.records[page.account_id] = page

    def drop_page(self, key: str) -> None:
        del self.records[key]

    def submit(self, kind: str, payload: dict[str, Any]) -> list[Output]:
        """Apply one input and every credit leg it causes; returns all outputs."""
        first = len(self.outputs)
        queue = deque([(kind, payload, codec.encode(TOPIC_OF[kind], payload))])
        while queue:
            kind, payload, data = queue.popleft()
            decoded = codec.decode(TOPIC_OF[kind], data)
            account = (
                control_key(0)
                if kind == "BREAKER_CHANGE"
                else (
                    decoded["to_account_id"] if kind == "TRANSFER_CREDIT" else decoded["account_id"]
                )
            )
            command_id = (
                ids.transfer_credit(decoded["account_id"], decoded["request_id"])
                if kind == "TRANSFER_CREDIT"
                else ids.breaker_command(self.breaker_offset)
                if kind == "BREAKER_CHANGE"
                else COMMAND_ID[kind](decoded)
            )
            self.offset += 1
            self.time_ms += 1
            if kind == "BREAKER_CHANGE":
                self.breaker_offset += 1
            command = Command(
                command_id,
                kind,
                account,
                decoded,
                data,
                self.offset,
                self.time_ms,
                source_offset=self.breaker_offset,
            )
            self.commands.append(command)
            try:
                produced = apply(self.record(account), command, self.context())
            except Rejected as rejection:
                self.outputs.extend(rejection.alerts)
                self.dead_letters.append(rejection.reason)
                continue
            if kind == "BREAKER_CHANGE":
                for key in list(self.records):
                    if not key.startswith("~"):
                        produced += release_held_payouts(self.records[key], command, self.context())
            for output in produced:
                if output.topic == catalogue.TRANSFER_CREDITS:
                    queue.append(("TRANSFER_CREDIT", None, output.value["payload"]))
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
