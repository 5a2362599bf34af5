"""Consumer lag per agent, as the `token_engine_consumer_lag{agent}` gauge.

Every `LAG_INTERVAL_S`, for each partition assigned to this worker's Faust consumer:
highwater minus the next offset the consumer will read, summed per agent (named by the
catalogue topic it reads); the ledger's from its command feed, which reads its partitions.
A lag that grows is the first sign of an agent falling behind.
"""

from __future__ import annotations

from collections import defaultdict

from streams import metrics
from streams.app import Engine
from streams.command_feed import CommandFeed
from topics import catalogue

LAG_INTERVAL_S = 5.0
AGENTS = {
    catalogue.BANK_NOTIFICATIONS: "reconciliation",
    catalogue.BANK_BALANCES: "reconciliation",
    catalogue.BANK_STATEMENTS: "reconciliation",
}


class LagGauge:
    """Sets `token_engine_consumer_lag` every LAG_INTERVAL_S for the worker's agents."""

    def __init__(self, engine: Engine, feed: CommandFeed) -> None:
        self.app = engine.app
        self.prefix = engine.settings.topic_prefix
        self.feed = feed
        self.app.timer(LAG_INTERVAL_S, name="consumer_lag")(self.measure)

    async def measure(self) -> None:
        consumer = self.app.consumer
        if consumer is None:
            return
        lag: dict[str, int] = defaultdict(int)
        lag["ledger"] = self.feed.lag()
        read_offsets = consumer._read_offset  # Faust keeps no public accessor for it
        for tp in consumer.assignment():
            try:
                agent = AGENTS.get(catalogue.short_name(tp.topic, self.prefix))
            except KeyError:
                continue  # changelogs and Faust's own topics
            highwater = consumer.highwater(tp)
            read = read_offsets.get(tp)
            if agent is None or highwater is None:
                continue
            lag[agent] += max(0, highwater - (read + 1 if read is not None else 0))
        for agent in {"ledger", *AGENTS.values()}:
            metrics.consumer_lag.labels(agent).set(lag.get(agent, 0))
