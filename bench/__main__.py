"""`make bench`: the raw broker, Faust's ceiling, a naive ledger agent and the engine, in one run.

Besides those: the engine's own per-event code alone on one core (no broker, no framework:
the ceiling of any pipeline around it), and the cores the workers and the broker used,
busy and idle (with the CPU time one event cost them: more workers gain only while the
machine has cores to spare for it).
Then the Postgres sink, tier-1 reconciliation and the chain watchers; `python -m bench NAME..`
runs some (ledger, sink, reconciliation, eth, btc, storage: the broker on memory and on
the disk `up` keeps its log on; wallets: one wallet-reconciliation pass; sweeps: 1,000
deposit addresses swept). Prints one
labelled line per figure,
e.g. `engine_1_worker events_per_s=5123 vs_null=0.77 ... worker_cores=0.81`.
Everything runs on the embedded default (or TOKENGINE_KAFKA), on this machine, now: quote
the ratios, since absolute numbers move with the machine's load.
"""

from __future__ import annotations

import sys

from bench.ledger import ledger
from bench.reconciliation import reconciliation
from bench.sink import sink
from bench.storage import storage
from bench.sweeps import sweeps
from bench.wallets import wallets
from bench.watchers import btc_watcher, eth_watcher
from core.config import Settings
from tokengine.services import EmbeddedServices

BENCHMARKS = {
    "ledger": ledger,
    "sink": sink,
    "reconciliation": reconciliation,
    "eth": eth_watcher,
    "btc": btc_watcher,
    "storage": storage,
    "wallets": wallets,
    "sweeps": sweeps,
}


def main() -> None:
    only = sys.argv[1:] or list(BENCHMARKS)  # e.g. `python -m bench sink reconciliation`
    with EmbeddedServices(Settings.from_env(), want_eth=False) as settings:
        for name in only:
            BENCHMARKS[name](settings)


if __name__ == "__main__":
    main()
