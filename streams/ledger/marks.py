"""Dedupe marks and the record's bounds: the idempotency window, pages, expiry, size.

Owns where a command's mark lives (`credited`: deposits and credit legs, kept for ever;
`applied`: requests and payout results, forgotten after `IDEMPOTENCY_WINDOW_MS`), the
pages marks and final items move to so a record stays one changelog message (sealed
credited-mark pages, final pages deleted after the window, a record measured and paged
by size when it holds many items), finding marks and final payouts in those pages, and
the sweep that forgets what is past the window (and refuses, `deposit_not_observed`,
requests still waiting for a deposit then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from core import ids
from core.reasons import Reason
from streams.ledger.commands import REQUEST_KINDS, Command, created_ms
from streams.ledger.errors import LedgerInvariantError
from streams.ledger.records import (
    AccountRecord,
    Mark,
    Payout,
    encode_record,
    final_page_key,
    is_credited_mark,
    mark_page_key,
    marks_of,
)
from streams.ledger.step import Step

IDEMPOTENCY_WINDOW_MS = 30 * 24 * 3600 * 1000  # request ids are remembered this long


SWEEP_INTERVAL_MS = 3600 * 1000  # a record forgets expired marks at most once per hour


# a request's created_at may be this far ahead of the ledger's time (a client's clock)
MAX_CLOCK_AHEAD_MS = 5 * 60 * 1000


# credited marks (kept for ever) a record holds before its oldest move to a sealed page:
# ~190 bytes each with real transaction hashes, so a record stays well under the 1 MB
# a Kafka message may have by default
CREDITED_MARKS_KEPT = 2000


MARKS_PER_PAGE = 1000


# request marks and payouts a record holds before its oldest final ones move to a final
# page (~350 bytes each)
FINAL_ITEMS_KEPT = 1000


FINAL_ITEMS_PER_PAGE = 500


# Counts alone do not bound a record's bytes (ids are up to 128 characters: an item is up
# to ~1.2 KB), so a record with many items is measured every SIZE_CHECK_EVERY commands
# (at most ~130 KB of growth in between): above PAGE_AT_BYTES what can move to pages does,
# above FULL_AT_BYTES new requests that would wait in it are refused. Kafka's and
# librdkafka's message limit is 1 MB; a record of SIZE_CHECK_ITEMS items is < ~500 KB.
SIZE_CHECK_EVERY = 64


SIZE_CHECK_ITEMS = 400


PAGE_AT_BYTES = 600_000


FULL_AT_BYTES = 700_000


T = TypeVar("T")


def find_mark(step: Step, command_id: str) -> Mark | None:
    """A command's mark: in the record, or else in one of its pages."""
    mark = marks_of(step.record, command_id).get(command_id)
    return mark if mark is not None else sealed_mark(step, command_id)


def sealed_mark(step: Step, command_id: str) -> Mark | None:
    """A mark moved out of the record to one of its pages (most records have none)."""
    record = step.record
    if is_credited_mark(command_id):
        numbers = reversed(range(record.mark_pages))
        keys = [mark_page_key(record.account_id, number) for number in numbers]
        return first_in_pages(step, keys, lambda page: page.credited.get(command_id))
    return first_in_pages(step, record.final_pages, lambda page: page.applied.get(command_id))


def find_final_payout(step: Step, payout_id: str) -> Payout | None:
    """A payout no longer in the record: final, in one of its final pages."""
    return first_in_pages(step, step.record.final_pages, lambda page: page.payouts.get(payout_id))


def first_in_pages(step: Step, keys: Iterable[str], find: Callable[[AccountRecord], T]) -> T | None:
    for key in keys:
        page = step.context.pages.page(key)
        if page is None:  # the worker stops: never guess
            raise LedgerInvariantError(f"page {key} is missing")
        found = find(page)
        if found is not None:
            return found
    return None


def seal_oldest_credited_marks(step: Step) -> None:
    """Move the record's oldest credited marks to a new sealed page (never changed again:
    a mark changes only while its own command is applied). The page is stored before the
    record is: both are records of the account's partition, written in that order."""
    record = step.record
    oldest = list(record.credited)[:MARKS_PER_PAGE]
    page = AccountRecord(
        mark_page_key(record.account_id, record.mark_pages),
        applied_offset=step.command.offset,
        credited={command_id: record.credited.pop(command_id) for command_id in oldest},
    )
    step.context.pages.add_page(page)
    record.mark_pages += 1


def seal_oldest_final_items(step: Step) -> None:
    """Move the record's oldest final request marks and final payouts (neither changes
    again) to a new final page, deleted once all it holds is past the window. A record
    whose items are mostly in flight keeps them."""
    record = step.record
    marks = [
        (mark_id, mark)
        for mark_id, mark in record.applied.items()
        if mark_id != step.command.command_id and is_final(mark)
    ][:FINAL_ITEMS_PER_PAGE]
    payouts = [p for p in record.payouts.values() if p.state != "PREPARED"]
    payouts = payouts[: FINAL_ITEMS_PER_PAGE - len(marks)]
    if len(marks) + len(payouts) < FINAL_ITEMS_PER_PAGE // 2:
        return
    for mark_id, _ in marks:
        del record.applied[mark_id]
    for payout in payouts:
        del record.payouts[payout.payout_id]
    key = final_page_key(record.account_id, record.final_pages_made)
    page = AccountRecord(
        key,
        applied_offset=step.command.offset,
        applied=dict(marks),
        payouts={p.payout_id: p for p in payouts},
    )
    step.context.pages.add_page(page)
    record.final_pages[key] = max(
        [mark.at_ms for _, mark in marks] + [p.created_ms for p in payouts]
    )
    record.final_pages_made += 1


def is_final(mark: Mark) -> bool:
    """A mark its request's later commands no longer change (an ACCEPTED request's does)."""
    return mark.result is None or mark.result.get("status") != "ACCEPTED"


def window_start(command: Command) -> int:
    """When a command's mark starts its idempotency window: the command's time, or a
    request's `created_at` if later (an upstream clock ahead of ours). A repeat that comes
    after its mark is forgotten is then always an expired request, never applied again."""
    if command.kind not in REQUEST_KINDS:
        return command.time_ms
    return max(command.time_ms, created_ms(command))


def request_expired(step: Step) -> bool:
    """Past the window by the record's clock (its newest command time), the one its marks
    are forgotten by: a repeat whose mark is gone is always expired, even if its own
    command time is older than the newest."""
    now_ms = max(step.command.time_ms, step.record.newest_ms)
    return created_ms(step.command) < now_ms - IDEMPOTENCY_WINDOW_MS


def untimely(step: Step) -> str | None:
    """Why a request is refused for its `created_at`, judged by the ledger's time (so a
    replay decides the same): past the window, or ahead of the command's time by more
    than a clock may be (its mark's window would start that late: `window_start`)."""
    if request_expired(step):
        return Reason.REQUEST_EXPIRED
    if created_ms(step.command) > step.command.time_ms + MAX_CLOCK_AHEAD_MS:
        return Reason.CREATED_IN_THE_FUTURE
    return None


def forget_expired(step: Step) -> None:
    """Drop request marks, final payouts and final pages older than the idempotency window
    (after `awaiting.forget_expired_waits`, which refuses the requests still waiting).

    A final payout's result is not awaited any more, and a repeat of its request (or of
    any request past the window) is rejected as `request_expired`.

    Credited marks (deposits, transfer credits) are kept for ever: they move money without
    a request's expiry to stop a late repeat, so a deposit id is never credited twice and a
    credit leg never applied twice, whenever its repeat comes.
    """
    record = step.record
    horizon = record.newest_ms - IDEMPOTENCY_WINDOW_MS
    if horizon <= 0:
        return
    for key, newest_ms in list(record.final_pages.items()):
        if newest_ms < horizon:
            del record.final_pages[key]
            step.context.pages.drop_page(key)
    # a request whose payout is still prepared keeps its mark: a repeat re-emits its result
    waiting = {
        ids.request_command(p.request_id) for p in record.payouts.values() if p.state == "PREPARED"
    }
    for mark_id, mark in list(record.applied.items()):
        if mark.at_ms < horizon and mark_id not in waiting:
            del record.applied[mark_id]
    for payout_id, payout in list(record.payouts.items()):
        if payout.state != "PREPARED" and payout.created_ms < horizon:
            del record.payouts[payout_id]


def record_items(record: AccountRecord) -> int:
    return len(record.applied) + len(record.credited) + len(record.payouts) + len(record.awaiting)


def keep_record_small(step: Step) -> None:
    """Measure the record; above PAGE_AT_BYTES move what can move (credited marks, final
    items) to pages, and remember the size (`record_full` refuses new waiting requests)."""
    record = step.record
    record.measured_bytes = len(encode_record(record))
    if record.measured_bytes > PAGE_AT_BYTES:
        if len(record.credited) >= MARKS_PER_PAGE // 4:  # not a page for a few marks
            seal_oldest_credited_marks(step)
        seal_oldest_final_items(step)
        record.measured_bytes = len(encode_record(record))


def record_full(record: AccountRecord) -> bool:
    return record.measured_bytes > FULL_AT_BYTES
