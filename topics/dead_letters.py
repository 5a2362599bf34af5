"""Dead letters: what a consumer could not decode or validate, kept with its reason.

Every consumer calls `dead_letter(...)` instead of raising, so its partition keeps moving;
a Kafka record's bytes (bounded by the broker) and its source topic/partition/offset travel
with the reason. Input from outside Kafka (a file, an HTTP body) travels only as
`excerpt(...)`: its size, digest and, when it looks like the text format expected, its
first bytes; never arbitrary file contents.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

MAX_EXCERPT_BYTES = 1024
TEXT_STARTS = (b"<", b"{", b"[")  # XML or JSON: what a bank file or body may be


def excerpt(data: bytes) -> tuple[bytes, str]:
    """(bytes to keep, a description) of input that could not be used."""
    digest = hashlib.sha256(data).hexdigest()
    described = f"{len(data)} bytes, sha256 {digest}"
    if data.lstrip()[:1] not in TEXT_STARTS:
        return b"", f"{described}; not XML or JSON: no excerpt kept"
    kept = data[:MAX_EXCERPT_BYTES]
    if len(kept) < len(data):
        described += f"; first {len(kept)} bytes kept"
    return kept, described


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
