"""A small JSON client of the worker's HTTP API (the demo and the tests use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(
    method: str, url: str, body: Any = None, timeout_s: float = 10, raw: bytes | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON body); `raw` sends bytes (e.g. a camt XML file) instead."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    content_type = "application/xml" if raw is not None else "application/json"
    request = urllib.request.Request(url, data, {"Content-Type": content_type}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
