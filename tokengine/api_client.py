"""A small JSON client of the worker's HTTP API (the demo and the tests use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(
    method: str,
    url: str,
    body: Any = None,
    timeout_s: float = 10,
    raw: bytes | None = None,
    key: str | None = None,
    content_type: str | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON body), calling with API key `key`; `raw` sends bytes (e.g. a
    camt XML file) instead, as `content_type` (default: XML unless they look like JSON)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    headers = {}
    if data is not None:  # raw bytes: XML unless they are a JSON document
        is_xml = raw is not None and raw.lstrip()[:1] not in (b"{", b"[")
        headers["Content-Type"] = content_type or (
            "application/xml" if is_xml else "application/json"
        )
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, decoded(response.read())
    except urllib.error.HTTPError as error:
        return error.code, decoded(error.read())


def decoded(body: bytes) -> Any:
    """A JSON body decoded; any other (e.g. Prometheus text) as text."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        return body.decode(errors="replace")


def read_key(path: str) -> str:
    """An API key kept in a file (`tokengine keys create --out`, the first operator key)."""
    with open(path) as handle:
        return handle.read().strip()
