"""The request-status view behind `GET /api/v1/requests/{id}`.

Reads request-results from the beginning (a `topics.view.TopicView`) and keeps the newest
result per request id (highest `version`), bounded in size. Each worker has the whole view,
so any worker answers any request id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from streams.app import serve_view
from topics import catalogue

MAX_REQUESTS_KEPT = 1_000_000


class RequestResults:
    def __init__(self, capacity: int = MAX_REQUESTS_KEPT) -> None:
        self.capacity = capacity
        self.results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, result: dict[str, Any]) -> None:
        request_id = result["request_id"]
        with self.lock:
            current = self.results.get(request_id)
            if current is not None and current["version"] > result["version"]:
                return
            if current is not None and current["status"] != "REJECTED" and late(result):
                return
            self.results[request_id] = result
            self.results.move_to_end(request_id)
            while len(self.results) > self.capacity:
                self.results.popitem(last=False)

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.results.get(request_id)


def late(result: dict[str, Any]) -> bool:
    """A rejection that never replaces a decision: the intake's (version 0, of a repeat it
    could not read), or a repeat's after the window (the request was decided long ago)."""
    return result["version"] == 0 or result["reason"] == "request_expired"


view = RequestResults()


results_view = serve_view(
    [catalogue.REQUEST_RESULTS], lambda _topic, result: view.add(result), "request-view"
)
