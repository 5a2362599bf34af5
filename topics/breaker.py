"""Publishing and reading circuit-breaker states on the breaker-state topic.

A change is written to every partition (`broadcast`), so the intake instance owning
partition p can place it in ledger-commands partition p, at one point in each account's
order. Readers that want the current state read partition 0 to its end (every change is
there too). The rules (scopes, states, policy) are `core.breaker`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition

from core.breaker import State
from topics import catalogue
from topics.alerts import alert
from topics.authentication import RecordAuth
from topics.codec import Codec, DecodeError
from topics.kafka import flush, make_reader

READ_TIMEOUT_S = 10.0
ALERT_KINDS = {
    State.OPEN: ("circuit_breaker.activated", "CRITICAL"),
    State.SUSPENDED: ("payouts.suspended", "HIGH"),
    State.CLOSED: ("circuit_breaker.reset", "INFO"),
}
# (catalogue topic, key, value, partition or None): what `broadcast` asks to be produced
Produce = Callable[[str, str, bytes, int | None], None]


def breaker_record(scope: str, state: str, level: str, reason: str, actor: str) -> dict[str, Any]:
    return {
        "scope": scope,
        "state": state,
        "level": level,
        "reason": reason,
        "actor": actor,
        "changed_at": datetime.now(UTC),
    }


def breaker_alert(record: dict[str, Any]) -> dict[str, Any]:
    """The alert every breaker change raises (activated / suspended / reset)."""
    kind, severity = ALERT_KINDS[State(record["state"])]
    stamp = int(record["changed_at"].timestamp() * 1000)
    return alert(
        kind,
        severity,
        f"{record['scope']}: {record['state']} by {record['actor']}: {record['reason']}",
        raised_by=f"{record['scope']}:{stamp}",
        raised_at=record["changed_at"],
        details={"scope": record["scope"], "level": record["level"], "actor": record["actor"]},
    )


def broadcast(produce: Produce, codec: Codec, record: dict[str, Any]) -> None:
    """The change's alert, and the change on every partition of breaker-state."""
    raised = breaker_alert(record)
    produce(catalogue.ALERTS, raised["kind"], codec.encode(catalogue.ALERTS, raised), None)
    value = codec.encode(catalogue.BREAKER_STATE, record)
    for partition in range(catalogue.spec(catalogue.BREAKER_STATE).partitions):
        produce(catalogue.BREAKER_STATE, record["scope"], value, partition)


def publish_breaker_state(producer: Producer, prefix: str, codec: Codec, record: dict) -> None:
    """`broadcast` through a producer, acknowledged before it returns."""

    def produce(topic: str, key: str, value: bytes, partition: int | None) -> None:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(prefix + topic, value, key.encode(), **extra)

    broadcast(produce, codec, record)
    flush(producer, "breaker state")


def read_breaker_states(
    bootstrap: str, prefix: str, codec: Codec, auth: RecordAuth
) -> dict[str, dict[str, Any]]:
    """The newest state per scope, from partition 0 of breaker-state (the engine's records
    only: `topics.authentication`)."""
    consumer = make_reader(bootstrap, "tokengine-breaker-read", **{"enable.partition.eof": True})
    name = catalogue.spec(catalogue.BREAKER_STATE).full_name(prefix)
    consumer.assign([TopicPartition(name, 0, OFFSET_BEGINNING)])
    states: dict[str, dict[str, Any]] = {}
    try:
        while True:
            message = consumer.poll(READ_TIMEOUT_S)
            if message is None or message.error():
                break  # quiet, or the end of the partition
            try:
                auth.check_message(catalogue.BREAKER_STATE, message)
                record = codec.decode(catalogue.BREAKER_STATE, message.value())
            except DecodeError:
                continue
            states[record["scope"]] = record
    finally:
        consumer.close()
    return states
