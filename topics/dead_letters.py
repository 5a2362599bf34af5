"""Dead letters: what a consumer could not decode or validate, kept whole with its reason.

Every consumer calls `dead_letter(...)` instead of raising, so its partition keeps moving;
the original bytes and the source topic/partition/offset travel with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def dead_letter(
    *,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    error: str,
    component: str,
) -> dict[str, Any]:
    return {
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "key": key,
        "value": value,
        "reason": reason,
        "error": error[:2000],
        "component": component,
        "failed_at": datetime.now(UTC),
    }


def dead_letter_of_message(
    message: Any, source_topic: str, reason: str, error: str, component: str
) -> dict[str, Any]:
    """The dead letter of a consumed message whose partition, offset, key and value are
    attributes (a Faust message, an intake source) or methods (a confluent-kafka message)."""

    def read(name: str) -> Any:
        value = getattr(message, name)
        return value() if callable(value) else value

    return dead_letter(
        source_topic=source_topic,
        source_partition=read("partition"),
        source_offset=read("offset"),
        key=read("key"),
        value=read("value"),
        reason=reason,
        error=error,
        component=component,
    )
