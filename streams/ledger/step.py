"""One command being applied: the record it changes, what it emits, what it may read.

Owns `Context` (the asset catalogue, the partition's breaker states, where records'
pages are), `Step` (the record, the command, the outputs so far), `Output` (an event to
emit, before encoding) and the checks handlers make of their input before they change
anything (`asset_or_none`, `amount_of`, `positive_amount_of`, `refuse_with_alert`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, NoReturn, Protocol

from core.assets import Asset, AssetCatalogue, UnknownAsset
from core.money import AmountError
from core.reasons import Reason
from streams.ledger.commands import Command, from_ms
from streams.ledger.errors import Rejected
from streams.ledger.records import AccountRecord
from topics import catalogue
from topics.alerts import alert as build_alert


class Output(NamedTuple):
    topic: str
    key: str
    value: dict[str, Any]


class RecordPages(Protocol):
    """Where a record's pages are kept: the accounts table, in the ledger agent."""

    def page(self, key: str) -> AccountRecord | None: ...

    def add_page(self, page: AccountRecord) -> None: ...

    def drop_page(self, key: str) -> None: ...


@dataclass
class PagesInMemory:
    pages: dict[str, AccountRecord] = field(default_factory=dict)

    def page(self, key: str) -> AccountRecord | None:
        return self.pages.get(key)

    def add_page(self, page: AccountRecord) -> None:
        self.pages[page.account_id] = page

    def drop_page(self, key: str) -> None:
        del self.pages[key]


@dataclass
class Context:
    assets: AssetCatalogue
    breaker: dict[str, str] = field(default_factory=dict)  # scope -> state, this partition's view
    pages: RecordPages = field(default_factory=PagesInMemory)


@dataclass
class Step:
    """What one command is doing: the record being changed and what it will emit."""

    record: AccountRecord
    command: Command
    context: Context
    outputs: list[Output] = field(default_factory=list)
    touched_assets: set[str] = field(default_factory=set)
    when: datetime = field(init=False)  # the command's event time, the time of every decision

    def __post_init__(self) -> None:
        self.when = from_ms(self.command.time_ms)


def asset_or_none(context: Context, code: str) -> Asset | None:
    try:
        return context.assets[code]
    except UnknownAsset:
        return None


def amount_of(asset: Asset, value: object, field: str = "amount") -> Decimal:
    """A non-negative amount from the wire at the asset's scale, or `Rejected` (intake
    checks it too; the ledger trusts no input)."""
    try:
        return asset.amount(value)
    except AmountError as error:
        raise Rejected(Reason.INVALID_AMOUNT, f"{field}: {error}") from None


def positive_amount_of(asset: Asset, value: object, field: str = "amount") -> Decimal:
    amount = amount_of(asset, value, field)
    if amount <= 0:
        raise Rejected(Reason.INVALID_AMOUNT, f"{field}: must be positive, not {amount}")
    return amount


def alert(step: Step, kind: str, severity: str, message: str, **details: str) -> None:
    raised = build_alert(
        kind,
        severity,
        message,
        raised_by=step.command.command_id,
        raised_at=step.when,
        account_id=step.record.account_id,
        details=details,
    )
    step.outputs.append(Output(catalogue.ALERTS, kind, raised))


def refuse_with_alert(step: Step, reason: str, message: str) -> NoReturn:
    """Refuse a command the ledger must act on but cannot (a payout result it cannot book,
    a credit leg of an asset no longer configured): dead letter and a CRITICAL alert."""
    alert(step, f"ledger.{reason}", "CRITICAL", message, command_id=step.command.command_id)
    raise Rejected(reason, message, alerts=step.outputs)
