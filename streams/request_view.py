"""The request-status view behind `GET /api/v1/requests/{id}`.

Reads request-results from the beginning (a `topics.view.TopicView`) and keeps the newest
result per account and request id (highest `version`), bounded in size. Each worker has
the whole view, so any worker answers any request id.

Request ids are chosen by clients, so two accounts may use one: each account's request is
its own entry, and another account reusing an id never replaces what an account's request
shows. The unscoped lookup answers for the account whose request the ledger decided
first (all results of one request id are on one partition of request-results, so "first"
is the same on every worker; an intake refusal, version 0, holds an id only until the
ledger decides one); `GET /api/v1/accounts/{account}/requests/{id}` answers for a given
account.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from core.reasons import Reason
from streams.app import Engine
from topics import catalogue

MAX_REQUESTS_KEPT = 1_000_000

Key = tuple[str, str]  # (account id, request id)


class RequestResults:
    def __init__(self, capacity: int = MAX_REQUESTS_KEPT) -> None:
        self.capacity = capacity
        self.results: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self.owners: dict[str, tuple[str, bool]] = {}  # request id -> (account, ledger's)
        self.lock = threading.Lock()

    def add(self, result: dict[str, Any]) -> None:
        request_id, account_id = result["request_id"], result["account_id"]
        key = (account_id, request_id)
        with self.lock:
            current = self.results.get(key)
            if current is not None and current["version"] > result["version"]:
                return
            if current is not None and current["status"] != "REJECTED" and late(result):
                return
            owner = self.owners.get(request_id)
            decided = result["version"] > 0  # by the ledger, not a refusal at intake
            if owner is None or (decided and not owner[1]):
                self.owners[request_id] = (account_id, decided)
            self.results[key] = result
            self.results.move_to_end(key)
            while len(self.results) > self.capacity:
                (owner, evicted), _ = self.results.popitem(last=False)
                if self.owners.get(evicted, ("",))[0] == owner:
                    del self.owners[evicted]

    def get(self, request_id: str, account_id: str | None = None) -> dict[str, Any] | None:
        """The request's result: of `account_id`, or else of the account that used the id
        first."""
        with self.lock:
            if account_id is None:
                account_id = self.owners.get(request_id, (None,))[0]
            return None if account_id is None else self.results.get((account_id, request_id))


def late(result: dict[str, Any]) -> bool:
    """A rejection that never replaces a decision: the intake's (version 0, of a repeat it
    could not read), or a repeat's after the window (the request was decided long ago)."""
    return result["version"] == 0 or result["reason"] == Reason.REQUEST_EXPIRED


class RequestView:
    """`RequestResults` folded from request-results for the worker's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self.results = RequestResults()
        self.view = engine.serve_view(
            [catalogue.REQUEST_RESULTS],
            lambda _topic, result: self.results.add(result),
            "request-view",
        )
