"""The request-status view: the newest decision per request id wins, late rejections do not."""

from __future__ import annotations

from streams.request_view import RequestResults


def result(status: str, version: int, reason: str | None = None, account: str = "alice") -> dict:
    return {
        "request_id": "w1",
        "account_id": account,
        "status": status,
        "version": version,
        "reason": reason,
    }


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


def test_another_account_reusing_a_request_id_never_replaces_its_result() -> None:
    view = RequestResults()
    view.add(result("COMPLETED", 5))
    view.add(result("REJECTED", 9, "insufficient_funds", account="mallory"))
    view.add(result("ACCEPTED", 1, account="mallory"))
    assert view.get("w1")["status"] == "COMPLETED"  # the account that used it first
    assert view.get("w1", "alice")["status"] == "COMPLETED"
    assert view.get("w1", "mallory")["reason"] == "insufficient_funds"
    assert view.get("w1", "nobody") is None


def test_the_view_stays_bounded_and_forgets_owners_with_their_results() -> None:
    view = RequestResults(capacity=2)
    for n in range(3):
        view.add({**result("COMPLETED", 1), "request_id": f"r{n}"})
    assert view.get("r0") is None and view.get("r2")["status"] == "COMPLETED"
    assert set(view.owners) == {"r1", "r2"}


def test_an_intake_refusal_does_not_hold_a_request_id_against_a_decided_request() -> None:
    view = RequestResults()
    view.add(result("REJECTED", 0, "invalid_amount", account="mallory"))  # refused at intake
    assert view.get("w1")["account_id"] == "mallory"
    view.add(result("ACCEPTED", 1))  # alice's, decided by the ledger
    view.add(result("REJECTED", 3, "insufficient_funds", account="mallory"))
    assert view.get("w1")["account_id"] == "alice"
