"""The request-status view: the newest decision per request id wins, late rejections do not."""

from __future__ import annotations

from streams.request_view import RequestResults


def result(status: str, version: int, reason: str | None = None) -> dict:
    return {"request_id": "w1", "status": status, "version": version, "reason": reason}


def test_a_late_rejection_never_replaces_a_decision() -> None:
    view = RequestResults()
    view.add(result("ACCEPTED", 3))
    view.add(result("COMPLETED", 5))
    view.add(result("REJECTED", 0, "invalid_field"))  # the intake's, of an unreadable repeat
    view.add(result("REJECTED", 9, "request_expired"))  # the ledger's, of a repeat past 30 days
    view.add(result("ACCEPTED", 4))  # older
    assert (view.get("w1")["status"], view.get("w1")["version"]) == ("COMPLETED", 5)
    view.add(result("FAILED", 6, "reverted"))  # a newer decision does replace it
    assert view.get("w1")["status"] == "FAILED"


def test_a_request_first_seen_past_its_window_shows_its_rejection() -> None:
    view = RequestResults()
    view.add(result("REJECTED", 1, "request_expired"))
    assert view.get("w1")["reason"] == "request_expired"
