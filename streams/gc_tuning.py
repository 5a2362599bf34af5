"""The cycle collector's settings for a long-running engine process (worker, intake)."""

from __future__ import annotations

import gc


def quieter_collector() -> None:
    """Python's cycle collector stops every thread while it runs. With its defaults a
    worker at 1,400 events/s ran 2 full collections in 10 s, of 64-157 ms each (the
    modules, Faust and the app made at start, about 100,000 objects, were scanned every
    time), and a young one every 700 allocations. Objects made so far are frozen out of
    all collections, and young collections run every 10,000 allocations. Call it once
    the process has imported and built what it keeps."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
