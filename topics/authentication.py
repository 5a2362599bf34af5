"""Internal records nobody outside the engine can forge: an HMAC on every record it writes.

Every topic but the three request topics is written by the engine alone, each by the
processes `catalogue.SIGNERS` names (worker, connectors, sink, operator). A record on
them carries the header `tokengine-auth: <signer>:<hex HMAC-SHA256>`, the MAC over the
topic's short name, the record's key and its value, under the signer's key. Every reader
in the engine checks it before it decodes (`RecordAuth.check`, raising `DecodeError`
with `Reason.UNAUTHENTICATED`): a record without it, under a key of a signer the topic
does not allow, or altered in any byte, is refused; the consumers that can (intake, the
ledger, the executors, the sink) dead-letter it and raise a CRITICAL alert, the views
skip it. A broker client can request (the request topics), never mint, pay, refund,
rebind or close the breaker.

The keys (`RecordKeys`): 32 random bytes per signing process, in one JSON file of mode
0600 (`TOKENGINE_RECORD_KEYS_FILE`, default DATA_DIR/secrets/record-keys.json), made at
first use. An HMAC key verifies and signs alike, so every engine process holding the
file could sign as any signer: the boundary is the engine's processes against everyone
else (on real Kafka, ACLs add a second one). A copied record stays valid (the prefix is
not in the MAC): consumers are idempotent by id, so a replay is a duplicate.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.reasons import Reason
from topics import catalogue
from topics.alerts import alert
from topics.codec import DecodeError
from topics.metrics import unauthenticated_records

HEADER = "tokengine-auth"
# Faust's changelog of the ledger's accounts table (not a catalogue topic): its records
# are signed too, and recovery skips one that is not (a forged record must not mint).
ACCOUNTS_CHANGELOG = "accounts-changelog"
KEY_BYTES = 32
CONTEXT = b"tokengine-record-v1\x00"

Headers = list[tuple[str, bytes]]


class RecordKeys:
    """One secret key per signing process (`catalogue.SIGNING_PROCESSES`)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        missing = [name for name in catalogue.SIGNING_PROCESSES if len(keys.get(name, b"")) < 32]
        if missing:
            raise ValueError(f"record keys: no key of at least 32 bytes for {missing}")
        self.keys = dict(keys)

    def __repr__(self) -> str:  # never the keys
        return f"RecordKeys({sorted(self.keys)})"

    @classmethod
    def generate(cls) -> RecordKeys:
        return cls({name: secrets.token_bytes(KEY_BYTES) for name in catalogue.SIGNING_PROCESSES})

    @classmethod
    def load_or_create(cls, path: Path) -> RecordKeys:
        """The keys in `path`, written first (mode 0600, in a 0700 directory) if absent;
        two processes creating it at once agree (the second reads the first's)."""
        try:
            return cls.read(path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = cls.generate()
        text = json.dumps({name: key.hex() for name, key in keys.keys.items()}, indent=2)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(text + "\n")
        try:
            os.link(temporary, path)  # fails if another process made it first
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
        return cls.read(path)

    @classmethod
    def read(cls, path: Path) -> RecordKeys:
        data = json.loads(path.read_text())
        return cls({name: bytes.fromhex(value) for name, value in data.items()})


def mac(key: bytes, topic: str, record_key: bytes | None, value: bytes | None) -> bytes:
    record_key, value = record_key or b"", value or b""
    message = b"".join(
        (
            CONTEXT,
            topic.encode(),
            b"\x00",
            len(record_key).to_bytes(4, "big"),
            record_key,
            value,
        )
    )
    return hmac.digest(key, message, "sha256")


def signers(topic: str) -> tuple[str, ...] | None:
    if topic == ACCOUNTS_CHANGELOG:
        return (catalogue.WORKER,)
    return catalogue.SIGNERS.get(topic)


class RecordAuth:
    """Signs what one process writes, as `signer`, and checks what it reads."""

    def __init__(self, keys: RecordKeys, signer: str | None) -> None:
        if signer is not None and signer not in catalogue.SIGNING_PROCESSES:
            raise ValueError(f"unknown signer {signer!r}")
        self.keys = keys.keys
        self.signer = signer

    def __repr__(self) -> str:
        return f"RecordAuth(signer={self.signer!r})"

    def headers(self, topic: str, key: bytes | None, value: bytes | None) -> Headers | None:
        """The headers that authenticate this record of `topic` (None on a request topic,
        which anyone may write); raises if this process may not write `topic`."""
        allowed = signers(topic)
        if allowed is None:
            return None
        if self.signer not in allowed:
            raise PermissionError(f"{self.signer} may not write {topic} (only {allowed})")
        tag = mac(self.keys[self.signer], topic, key, value).hex()
        return [(HEADER, f"{self.signer}:{tag}".encode())]

    def check(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Iterable | None
    ) -> str | None:
        """The signer of an authentic record of `topic` (None on a request topic); raises
        `DecodeError(UNAUTHENTICATED)` for any other."""
        allowed = signers(topic)
        if allowed is None:
            return None
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        found = [v for name, v in pairs if name == HEADER]
        if len(found) != 1 or not isinstance(found[0], bytes):
            raise DecodeError(Reason.UNAUTHENTICATED, f"{topic}: no record authentication")
        signer, _, tag = found[0].decode("ascii", "replace").partition(":")
        if signer not in allowed:
            message = f"{topic}: signed as {signer!r}, which may not write it"
            raise DecodeError(Reason.UNAUTHENTICATED, message)
        expected = mac(self.keys[signer], topic, key, value).hex()
        if not hmac.compare_digest(expected, tag):
            message = f"{topic}: the record's authentication does not match (forged or altered)"
            raise DecodeError(Reason.UNAUTHENTICATED, message)
        return signer

    def check_message(self, topic: str, message: Any) -> str | None:
        """`check` of a confluent-kafka message."""
        return self.check(topic, message.key(), message.value(), message.headers())


def record_auth(settings: Any, signer: str | None) -> RecordAuth:
    """The `RecordAuth` of a process with these settings (the keys file made if absent)."""
    return RecordAuth(RecordKeys.load_or_create(settings.record_keys_path), signer)


def refused_alert(topic: str, partition: int, offset: int, error: str, component: str) -> dict:
    """The CRITICAL alert every refusal of an unauthenticated record raises (its id names
    the record, so a refusal repeated after a crash is the same alert); counted in
    `token_engine_unauthenticated_records` of the refusing process."""
    unauthenticated_records.labels(topic, component).inc()
    return alert(
        "record.unauthenticated",
        "CRITICAL",
        f"{component} refused a record of {topic} that the engine did not write: {error}",
        raised_by=f"{topic}[{partition}]@{offset}",
        raised_at=datetime.now(UTC),
        details={"topic": topic, "partition": partition, "offset": offset, "by": component},
    )


class SigningProducer:
    """A confluent-kafka producer that signs every record it writes to a catalogue topic
    (the names carry `prefix`); everything else is the producer's own."""

    def __init__(self, producer: Any, prefix: str, auth: RecordAuth) -> None:
        self.producer = producer
        self.prefix = prefix
        self.auth = auth

    def produce(self, topic: str, value: bytes | None = None, key: Any = None, *args, **kwargs):
        raw_key = key.encode() if isinstance(key, str) else key
        signature = self.auth.headers(catalogue.short_name(topic, self.prefix), raw_key, value)
        if signature:
            kwargs["headers"] = [*(kwargs.get("headers") or ()), *signature]
        return self.producer.produce(topic, value, key, *args, **kwargs)

    def __len__(self) -> int:
        return len(self.producer)

    def __getattr__(self, name: str) -> Any:  # flush, poll, ...
        return getattr(self.producer, name)


def signing_producer(settings: Any, signer: str, **extra: Any) -> SigningProducer:
    """A producer of this process's settings that signs as `signer`."""
    from topics.kafka import make_producer

    producer = make_producer(settings.kafka or "127.0.0.1:9092", **extra)
    return SigningProducer(producer, settings.topic_prefix, record_auth(settings, signer))


def produce_refused_alert(
    producer: Any,
    prefix: str,
    codec: Any,
    source: tuple[str, int, int],
    error: str,
    component: str,
) -> None:
    """`refused_alert` of the record at `source` (topic, partition, offset), produced to
    the alerts topic through `producer` (a `SigningProducer`; the caller flushes)."""
    raised = refused_alert(*source, error, component)
    producer.produce(
        prefix + catalogue.ALERTS, codec.encode(catalogue.ALERTS, raised), raised["kind"].encode()
    )
