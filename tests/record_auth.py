"""Record authentication for pure tests (no keys file): one set of keys, signing as the
first process a topic allows (as the engine would), checking with the same keys."""

from __future__ import annotations

from topics import catalogue
from topics.authentication import Headers, RecordAuth, RecordKeys

KEYS = RecordKeys.generate()
AUTH = RecordAuth(KEYS, None)  # checks only


def signed(topic: str, key: bytes | None, value: bytes | None) -> Headers | None:
    signer = (catalogue.SIGNERS.get(topic) or (catalogue.WORKER,))[0]
    return RecordAuth(KEYS, signer).headers(topic, key, value)
