"""Requests' results: what the ledger decides for a request, and how a repeat sees it.

Owns `decide` (a request's result emitted on request-results and remembered on the
request's mark, and on the mark of the command deciding it, so a duplicate of either
re-emits it) and the result event's shape. A deposit's mark keeps, beside any request's
result, the amount the deposit credited (`CREDITED`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import ids
from streams.ledger.commands import from_ms
from streams.ledger.records import Mark, marks_of
from streams.ledger.step import Output, Step
from topics import catalogue

CREDITED = "credited"  # in a deposit's mark result: the amount it credited


def decide(
    step: Step,
    request_id: str,
    request_kind: str,
    status: str,
    *,
    reason: str | None = None,
    asset: str | None = None,
    amount: Decimal | None = None,
    fee: Decimal | None = None,
    on_command: bool = True,
) -> None:
    """Emit a request's result and remember it on the request's mark for duplicates, and
    on the mark of the command deciding it (`on_command`; not for a request the sweep
    refuses on some other command's turn). A deposit's mark keeps what it credited."""
    result = {
        "request_id": request_id,
        "account_id": step.record.account_id,
        "request_kind": request_kind,
        "status": status,
        "reason": reason,
        "asset": asset,
        "amount": None if amount is None else str(amount),
        "fee": None if fee is None else str(fee),
        "version": step.record.version + 1,
        "decided_ms": step.command.time_ms,
    }
    # a duplicate of the request, or of the command that decided it, re-emits this result
    mark_ids = {ids.request_command(request_id)}
    if on_command:
        mark_ids.add(step.command.command_id)
    for mark_id in mark_ids:
        marks = marks_of(step.record, mark_id)  # the command's own, never a sealed one
        mark = marks.get(mark_id)
        if mark is not None:
            credited = (mark.result or {}).get(CREDITED)
            remembered = result if credited is None else {**result, CREDITED: credited}
            marks[mark_id] = mark._replace(result=remembered)
    step.outputs.append(Output(catalogue.REQUEST_RESULTS, request_id, result_event(result)))


def result_event(result: dict[str, Any]) -> dict[str, Any]:
    event = {k: v for k, v in result.items() if k not in ("decided_ms", CREDITED)}
    for name in ("amount", "fee"):
        event[name] = None if result[name] is None else Decimal(result[name])
    event["decided_at"] = from_ms(result["decided_ms"])
    return event


def reemit_result(step: Step, mark: Mark) -> None:
    if mark.result is not None and "request_id" in mark.result:
        step.outputs.append(
            Output(catalogue.REQUEST_RESULTS, mark.result["request_id"], result_event(mark.result))
        )
