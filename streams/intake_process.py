"""Intake's own process: the worker starts it, supervises it and shows its counters.

Intake (`streams.intake`: decode, validate, route) took a fifth of a worker's
interpreter lock as a thread beside the ledger, which is what limits a worker. In its
own process it runs on the other core; a worker is this pair (one worker's backlog
throughput: +2% to +37%, median +10%, in 6 alternating pairs; latency unchanged).

The pipes between them carry everything:
- the child's stdin: it reads it until end of file, which comes when the worker closes
  it at its stop or dies (even by SIGKILL); the child then stops between batches,
  commits what it handled and exits. SIGTERM and SIGINT stop it the same way.
- the child's stdout: one JSON line every `REPORT_INTERVAL_S` and a last one at its
  stop, `{"ready": bool, "counters": [[metric, labels, total], ...]}`; the worker adds
  the growth of each total to its own counters (its `/metrics`) and is ready once the
  child has its partitions.
A child that dies is started again after `RESTART_DELAY_S` (intake is stateless: the
new one continues from the committed offsets).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
from typing import IO

import mode
from mode.utils.logging import level_number
from prometheus_client import Counter

from core.config import Settings
from core.secrets import install_log_redaction, settings_secrets
from streams import metrics
from streams.app import Engine
from streams.gc_tuning import quieter_collector
from streams.intake import IntakeLoop

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.2
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 15.0
RELAYED: dict[str, Counter] = {
    "events_processed": metrics.events_processed,
    "dead_letters": metrics.dead_letters,
    "unauthenticated_records": metrics.unauthenticated_records,
}
LabelSet = tuple[tuple[str, str], ...]


# -- the child -------------------------------------------------------------------------


def counter_totals() -> list[list]:
    """[metric, labels, total] for every labelled child of the relayed counters."""
    totals = []
    for name, counter in RELAYED.items():
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals.append([name, sample.labels, sample.value])
    return totals


def report(out: IO[str], runner: IntakeLoop) -> None:
    line = {"ready": runner.assigned.is_set(), "counters": counter_totals()}
    out.write(json.dumps(line) + "\n")
    out.flush()


def report_until_stopped(out: IO[str], runner: IntakeLoop) -> None:
    try:
        while not runner.stopping.wait(REPORT_INTERVAL_S):
            report(out, runner)
    except (BrokenPipeError, ValueError):  # the worker is gone
        runner.stopping.set()


def stop_at_end_of_input(runner: IntakeLoop) -> None:
    sys.stdin.buffer.read()  # returns at end of file: the worker closed it or died
    runner.stopping.set()


def child_main() -> None:
    """The intake process: settings from the environment, no Faust app."""
    settings = Settings.from_env()
    logging.basicConfig(
        level=level_number(settings.log_level),
        format="[%(asctime)s] intake process %(levelname)s: %(message)s",
    )
    install_log_redaction(settings_secrets(settings), settings.log_level)
    out = sys.stdout
    sys.stdout = sys.stderr  # stdout carries reports only
    runner = IntakeLoop(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stopping.set())
    threading.Thread(target=stop_at_end_of_input, args=(runner,), daemon=True).start()
    reporter = threading.Thread(target=report_until_stopped, args=(out, runner), daemon=True)
    reporter.start()
    quieter_collector()
    runner.run()
    reporter.join()
    with contextlib.suppress(BrokenPipeError, ValueError):  # the worker is gone
        report(out, runner)  # the last counts


# -- the worker's side -----------------------------------------------------------------


class CounterRelay:
    """Adds the growth of one child's counter totals to this process's counters."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, LabelSet], float] = {}

    def add(self, totals: list[list]) -> None:
        for name, labels, total in totals:
            key = (name, tuple(sorted(labels.items())))
            growth = total - self.seen.get(key, 0.0)
            self.seen[key] = total
            counter = RELAYED.get(name)
            if counter is not None and growth > 0:
                counter.labels(**labels).inc(growth)


class IntakeSupervisor:
    """Runs the child, in a thread: starts it, reads its reports, starts it again if it dies."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.child: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self.run, name="intake-supervisor", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.child = subprocess.Popen(
                [sys.executable, "-m", "streams.intake_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            if self.stopping.is_set():  # `stop` may have looked at the previous child
                self.child.stdin.close()
            self.relay_reports(self.child)
            code = self.child.wait()
            self.ready.clear()
            if not self.stopping.is_set():
                log.error("intake process exited (%s); starting it again", code)
                self.stopping.wait(RESTART_DELAY_S)

    def relay_reports(self, child: subprocess.Popen) -> None:
        relay = CounterRelay()
        for line in child.stdout:  # until the child exits
            try:
                reported = json.loads(line)
            except ValueError:
                log.warning("intake process: not a report: %r", line[:200])
                continue
            relay.add(reported["counters"])
            if reported["ready"]:
                self.ready.set()

    def stop(self) -> None:
        """Ask the child to stop (end of its input), wait for it, kill it if it hangs."""
        self.stopping.set()
        child = self.child
        if child is not None and child.stdin is not None:
            child.stdin.close()
        self.thread.join(STOP_TIMEOUT_S)
        if child is not None and child.poll() is None:
            log.warning("intake process did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
            child.kill()


class IntakeService(mode.Service):
    """Supervises the intake process for the lifetime of the Faust worker."""

    supervisor: IntakeSupervisor | None = None

    async def on_start(self) -> None:
        self.supervisor = IntakeSupervisor()
        self.supervisor.thread.start()

    async def on_stop(self) -> None:
        if self.supervisor is not None:
            await self.loop.run_in_executor(None, self.supervisor.stop)

    @property
    def ready(self) -> bool:
        return self.supervisor is not None and self.supervisor.ready.is_set()


class Intake:
    """The worker's intake process, run and supervised for the worker's lifetime."""

    def __init__(self, engine: Engine) -> None:
        self.service = IntakeService()
        engine.app.service(self.service)  # an instance: Faust starts it with the app

    @property
    def ready(self) -> bool:
        return self.service.ready


if __name__ == "__main__":
    child_main()
