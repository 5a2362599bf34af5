"""`tokengine demo`: one scripted scenario through the real pipeline, with a final report.

Walks through: assets and deposit addresses, on-chain deposits credited at their security
level, sweeps of the deposit addresses to the hot and cold wallets, a fiat deposit
(camt.054), a withdrawal with its real network fee, a failed payout rolled back with its
failure fee, a cross-chain and an internal transfer, a load phase, reconciliation from
Minor to Critical and back with an operator reset, end of day (camt.053), and a final
report. Exit code 0 only if every check of the report holds. `harness` starts the
services and holds the report; `chain`, `flows`, `reconciliation` and `final_report` are
the steps, in that order.
"""

from __future__ import annotations

import time

from core.config import Settings
from tokengine.demo.chain import chain_deposits, configure, sweeps
from tokengine.demo.final_report import final_report
from tokengine.demo.flows import flows, load
from tokengine.demo.harness import Demo, DemoFailure, console
from tokengine.demo.reconciliation import end_of_day, reconciliation
from tokengine.services import EmbeddedServices
from topics import catalogue
from topics.tail import read_to_end

STEPS = (configure, chain_deposits, sweeps, flows, load, reconciliation, end_of_day, final_report)


def run_demo(settings: Settings, load_requests: int) -> int:
    demo = Demo(settings, load_requests)
    started = time.monotonic()
    # anvil automines: the demo mines on purpose; bitcoind mines only when asked
    services = EmbeddedServices(demo.base, want_btc=True)
    try:
        demo.start(services)
        for step in STEPS:
            step(demo)
    except DemoFailure as failure:
        demo.report.check("scenario ran to the end", False, str(failure))
        letters = read_to_end(demo.settings, catalogue.DEAD_LETTERS, timeout_s=5)
        for letter in letters[-5:]:
            console.print(f"   dead letter: {letter['reason']}: {letter['error'][:300]}")
    finally:
        demo.stop(services)
    seconds = time.monotonic() - started
    verdict = "[green]all checks hold[/green]" if demo.report.ok else "[red]CHECKS FAILED[/red]"
    console.print(f"\n{verdict} ({len(demo.report.checks)} checks, {seconds:.0f} s)")
    return 0 if demo.report.ok else 1
