"""Publishing and reading circuit-breaker states on the breaker-state topic.

A change is written to every partition, so the intake instance owning partition p can
place it in ledger-commands partition p, at one point in each account's order. Readers
that want the current state read partition 0 to its end (every change is there too).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from topics import catalogue
from topics.codec import Codec, DecodeError

READ_TIMEOUT_S = 10.0
GLOBAL_SCOPE = "global"
ASSET_SCOPE_PREFIX = "asset:"


def scope_problem(scope: object, asset_codes: Iterable[str]) -> str | None:
    """Why `scope` names no breaker scope ('global' or 'asset:<configured code>')."""
    if scope == GLOBAL_SCOPE:
        return None
    asset_scope = isinstance(scope, str) and scope.startswith(ASSET_SCOPE_PREFIX)
    if asset_scope and scope.removeprefix(ASSET_SCOPE_PREFIX) in set(asset_codes):
        return None
    shown = repr(scope)[:60]
    return f"must be 'global' or 'asset:<a configured asset>', not {shown}"


def breaker_record(scope: str, state: str, level: str, reason: str, actor: str) -> dict[str, Any]:
    return {
        "scope": scope,
        "state": state,
        "level": level,
        "reason": reason,
        "actor": actor,
        "changed_at": datetime.now(UTC),
    }


ALERT_KINDS = {
    "OPEN": ("circuit_breaker.activated", "CRITICAL"),
    "SUSPENDED": ("payouts.suspended", "HIGH"),
    "CLOSED": ("circuit_breaker.reset", "INFO"),
}


def breaker_alert(record: dict[str, Any]) -> dict[str, Any]:
    """The alert every breaker change raises (activated / suspended / reset)."""
    kind, severity = ALERT_KINDS[record["state"]]
    stamp = int(record["changed_at"].timestamp() * 1000)
    return {
        "alert_id": f"{kind}:{record['scope']}:{stamp}",
        "kind": kind,
        "severity": severity,
        "account_id": None,
        "message": f"{record['scope']}: {record['state']} by {record['actor']}: {record['reason']}",
        "details": {"scope": record["scope"], "level": record["level"], "actor": record["actor"]},
        "raised_at": record["changed_at"],
    }


def publish_breaker_state(producer: Producer, prefix: str, codec: Codec, record: dict) -> None:
    """Write the change to every partition, and its alert."""
    alert = breaker_alert(record)
    producer.produce(
        catalogue.spec(catalogue.ALERTS).full_name(prefix),
        codec.encode(catalogue.ALERTS, alert),
        alert["kind"].encode(),
    )
    topic = catalogue.spec(catalogue.BREAKER_STATE)
    value = codec.encode(catalogue.BREAKER_STATE, record)
    for partition in range(topic.partitions):
        producer.produce(
            topic.full_name(prefix), value, record["scope"].encode(), partition=partition
        )
    if producer.flush(30) != 0:
        raise RuntimeError("breaker state not acknowledged by the broker")


def read_breaker_states(bootstrap: str, prefix: str, codec: Codec) -> dict[str, dict[str, Any]]:
    """The newest state per scope, from partition 0 of breaker-state."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "tokengine-breaker-read",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    name = catalogue.spec(catalogue.BREAKER_STATE).full_name(prefix)
    consumer.assign([TopicPartition(name, 0, OFFSET_BEGINNING)])
    states: dict[str, dict[str, Any]] = {}
    try:
        while True:
            message = consumer.poll(READ_TIMEOUT_S)
            if message is None:
                break
            if message.error():
                break  # end of partition
            try:
                record = codec.decode(catalogue.BREAKER_STATE, message.value())
            except DecodeError:
                continue
            states[record["scope"]] = record
    finally:
        consumer.close()
    return states
