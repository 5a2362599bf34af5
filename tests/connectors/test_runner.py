"""The connectors' supervisor: one failing connector stops the others and is reported."""

from __future__ import annotations

import threading

from connectors.runner import run_all


class Waits:
    def __init__(self) -> None:
        self.stopping = threading.Event()

    def run(self) -> None:
        assert self.stopping.wait(30), "never stopped"

    def stop(self) -> None:
        self.stopping.set()


class Fails(Waits):
    def run(self) -> None:
        raise RuntimeError("node answered nonsense")


def test_a_failing_connector_stops_the_others_and_is_reported():
    waiting = Waits()
    assert run_all([waiting, Fails()]) == ["Fails"]
    assert waiting.stopping.is_set()


def test_connectors_that_stop_report_no_failure():
    first, second = Waits(), Waits()
    first.stop(), second.stop()  # as a signal does
    assert run_all([first, second]) == []
