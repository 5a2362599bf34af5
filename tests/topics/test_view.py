"""Whole-topic views: a record whose fold raises is skipped; the view goes on."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.helpers import produce
from topics import catalogue
from topics.authentication import record_auth
from topics.codec import SingleObjectCodec
from topics.view import TopicView


def test_a_record_whose_fold_raises_does_not_stop_the_view(settings) -> None:
    folded: list[str] = []

    def fold(_topic: str, value: dict) -> None:
        if value["account_id"] == "poison":
            raise KeyError("a field the fold did not expect")
        folded.append(value["account_id"])

    for account in ("first", "poison", "after"):
        binding = {"chain": "bank", "address": f"REF-{account}", "account_id": account,
                   "bound_at": datetime.now(UTC)}  # fmt: skip
        produce(settings, catalogue.ADDRESS_BINDINGS, "k", binding)
    view = TopicView(
        settings.kafka, settings.topic_prefix, SingleObjectCodec(),
        record_auth(settings, None), [catalogue.ADDRESS_BINDINGS], fold, "test-view",
    )  # fmt: skip
    view.start()
    try:
        assert view.wait_caught_up(30)
        assert folded == ["first", "after"] and view.unfolded == 1
        assert view.thread.is_alive()
    finally:
        view.stop()
