"""Requests waiting for their deposit: a deposit request, or a cross-chain transfer.

Owns `record.awaiting` (deposit id -> the waiting request): at most
`MAX_AWAITING_DEPOSITS` per account, one request per deposit, each forgotten with the
idempotency window by the sweep (`streams.ledger.marks.forget_expired`).
"""

from __future__ import annotations

from typing import Any

from core.reasons import Reason
from streams.ledger.marks import IDEMPOTENCY_WINDOW_MS, record_full
from streams.ledger.records import AccountRecord
from streams.ledger.results import decide
from streams.ledger.step import Step

# requests an account may have waiting at once (deposits announced, payouts in flight):
# each is ~150-400 bytes of the record, which must stay one changelog message (< 1 MB)
MAX_AWAITING_DEPOSITS = 500


def await_deposit(step: Step, key: str, waiting: dict[str, Any]) -> bool:
    """Remember a request that waits for its deposit (bounded per account, forgotten with
    the window); False, and the request refused, when the account already waits for many
    or another request already waits for this deposit."""
    record = step.record
    kind, request_id = waiting["request_kind"], waiting["request_id"]
    earlier = record.awaiting.get(key)
    refused = None
    if earlier is not None and earlier["request_id"] != request_id:
        refused = Reason.DEPOSIT_ALREADY_REQUESTED
    elif earlier is None and (awaiting_live(step) >= MAX_AWAITING_DEPOSITS or record_full(record)):
        refused = Reason.TOO_MANY_PENDING_REQUESTS
    if refused:
        decide(step, request_id, kind, "REJECTED", reason=refused)
        return False
    record.awaiting[key] = {**waiting, "at_ms": step.command.time_ms}
    return True


def awaited_since(record: AccountRecord, waiting: dict[str, Any]) -> int:
    """When a request began to wait."""
    return waiting["at_ms"]


def awaiting_live(step: Step) -> int:
    """Requests waiting for a deposit, less those past the window by the account's clock
    (the next sweep forgets them; counted only when the record holds many)."""
    record = step.record
    if len(record.awaiting) < MAX_AWAITING_DEPOSITS:
        return len(record.awaiting)
    horizon = max(record.newest_ms, step.command.time_ms) - IDEMPOTENCY_WINDOW_MS
    return sum(
        1 for waiting in record.awaiting.values() if awaited_since(record, waiting) >= horizon
    )


def forget_expired_waits(step: Step) -> None:
    """Refuse (`deposit_not_observed`) the requests whose deposit never came within the
    window, and forget them (the sweep, before `marks.forget_expired`)."""
    record = step.record
    horizon = record.newest_ms - IDEMPOTENCY_WINDOW_MS
    if horizon <= 0:
        return
    for key, waiting in list(record.awaiting.items()):
        if awaited_since(record, waiting) < horizon:
            del record.awaiting[key]
            kind, request_id = waiting["request_kind"], waiting["request_id"]
            reason = Reason.DEPOSIT_NOT_OBSERVED
            decide(step, request_id, kind, "REJECTED", reason=reason, on_command=False)
