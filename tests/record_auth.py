"""Record authentication for pure tests (no keys file): one set of keys, signing as the
first process a topic allows (as the engine would), checking with the same keys."""

from __future__ import annotations

from topics import catalogue
from topics.authentication import Headers, RecordAuth, RecordKeys

KEYS = RecordKeys.generate()
AUTH = RecordAuth(KEYS, None)  # checks only


def engine_signer(topic: str) -> str:
    """The process that writes `topic` in the engine (the first one it allows)."""
    return (catalogue.SIGNERS.get(topic) or (catalogue.WORKER,))[0]


def signed(topic: str, key: bytes | None, value: bytes | None) -> Headers | None:
    return RecordAuth(KEYS, engine_signer(topic)).headers(topic, key, value)
