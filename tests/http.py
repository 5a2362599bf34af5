"""The HTTP clients tests use: the engine's own JSON client (`tokengine.api_client`), and
plain text (e.g. `/metrics`), calling with the key of the role a route needs.

Each test's topics get their own keys (`keys_for`: a CLIENT key for every account, a BANK
key for every configured bank account, an OPERATOR and an AUDITOR key), issued as the
engine's owner would; `call` picks the role from the route unless a `key` is given
(`key=None`: no key at all). The access-control tests pass keys explicitly.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

from core.access import AUDITOR, BANK, CLIENT, OPERATOR
from core.assets import load_assets
from core.config import Settings
from tokengine import api_client
from topics.codec import SingleObjectCodec
from topics.operator_records import issue_key

AUTO = "auto"
BANK_ROUTES = ("/api/v1/bank/camt", "/api/v1/reconciliation/camt054", "/api/v1/reconciliation/eod")
CLIENT_ROUTES = ("/api/v1/deposits", "/api/v1/withdrawals", "/api/v1/transfers")

_keys: dict[str, dict[str, str]] = {}  # topic prefix -> role -> key
_servers: dict[str, str] = {}  # API base URL -> topic prefix


def keys_for(settings: Settings) -> dict[str, str]:
    """One key per role for these settings' topics (made once)."""
    if settings.topic_prefix not in _keys:
        codec = SingleObjectCodec()
        banks = sorted(load_assets(settings.assets_file).bank_accounts)
        roles = {CLIENT: ["*"], BANK: banks, OPERATOR: [], AUDITOR: []}
        _keys[settings.topic_prefix] = {
            role: issue_key(settings, codec, role, accounts, f"tests {role.lower()}", "tests")[0]
            for role, accounts in roles.items()
            if accounts or role not in (CLIENT, BANK)
        }
    return _keys[settings.topic_prefix]


def serve(api_url: str, settings: Settings) -> None:
    """Calls to `api_url` use these settings' keys."""
    keys_for(settings)
    _servers[api_url] = settings.topic_prefix


def role_for(method: str, path: str) -> str:
    if path in BANK_ROUTES:
        return BANK
    if method == "POST" and path in CLIENT_ROUTES:
        return CLIENT
    return OPERATOR


def key_of(url: str, method: str, role: str | None = None) -> str | None:
    parts = urllib.parse.urlsplit(url)
    prefix = _servers.get(f"{parts.scheme}://{parts.netloc}")
    if prefix is None:
        return None
    return _keys[prefix].get(role or role_for(method, parts.path))


def call(
    method: str,
    url: str,
    body: Any = None,
    timeout_s: float = 10,
    raw: bytes | None = None,
    key: str | None = AUTO,
    content_type: str | None = None,
) -> tuple[int, Any]:
    if key == AUTO:
        key = key_of(url, method)
    return api_client.call(method, url, body, timeout_s, raw, key, content_type)


def call_text(url: str, key: str | None = AUTO) -> str:
    if key == AUTO:
        key = key_of(url, "GET")
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()
