"""The HTTP clients tests use: the engine's own JSON client (`tokengine.api_client`), and
plain text (e.g. `/metrics`)."""

import urllib.request

from tokengine.api_client import call

__all__ = ["call", "call_text"]


def call_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
