"""Two Faust apps to compare the engine against: a null agent and a naive ledger agent.

`null`: consumes the input and does nothing (the framework's ceiling on this machine).
`naive`: per event, one table update and one `await send` of an output (the plain way).
Each app counts events and writes `done <seconds>` to BENCH_RESULT when it has seen
BENCH_EVENTS of them. Run: `python -m bench.baseline_agents null|naive`.
"""

from __future__ import annotations

import os
import sys
import time

import faust

from core.config import Settings

KIND = sys.argv[1] if len(sys.argv) > 1 else "null"
settings = Settings.from_env()
EVENTS = int(os.environ["BENCH_EVENTS"])
RESULT = os.environ["BENCH_RESULT"]

app = faust.App(
    f"bench-{KIND}-{os.getpid()}",
    broker=f"kafka://{settings.kafka}",
    store="memory://",
    topic_partitions=8,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    producer_linger=0.005,
    datadir=f"/tmp/bench-{KIND}-{os.getpid()}",
)
source = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["BENCH_TOPIC"] + "-out", key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions=8)
state = {"seen": 0, "start": None}


def count() -> None:
    state["seen"] += 1
    if state["start"] is None:
        state["start"] = time.monotonic()
    if state["seen"] == EVENTS:
        with open(RESULT, "w") as out:
            out.write(f"done {time.monotonic() - state['start']:.3f}\n")


@app.agent(source)
async def agent(stream):
    if KIND == "null":
        async for _ in stream.events():
            count()
    else:
        async for event in stream.events():
            counts[event.key.decode()] += 1
            await sink.send(key=event.key, value=event.value)
            count()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
