"""API keys and what each role may do: the pure rules behind the HTTP API's access control.

A key is `tke_<key id>_<secret>`: 32 random bytes of secret (base64url), shown once when
it is made; the engine keeps only the SHA-256 of the whole key (a key that random needs
no slow hash) and compares it in constant time. Keys live on the `api-keys` topic as
`ApiKey` records (`KeyRing` folds them: the newest record of a key wins, and REVOKED is
final). Roles:

- CLIENT: submits deposits, withdrawals and transfers of its accounts, reads their
  balances and requests, nothing else. Its accounts are ids, or prefixes ending in `*`
  (an upstream service acting for a range of accounts).
- BANK: posts bank files and camt JSON for the bank accounts it was issued for.
- OPERATOR: binds addresses, sets prices, trips and resets the breaker, moves
  discrepancies, runs reconciliation on demand, manages keys, and reads what auditors do.
- AUDITOR: reads the audit log, summaries, balances and requests; changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import fields
from core.fields import FieldError
from core.reasons import Reason

CLIENT, BANK, OPERATOR, AUDITOR = "CLIENT", "BANK", "OPERATOR", "AUDITOR"
ROLES = (CLIENT, BANK, OPERATOR, AUDITOR)
TOKEN_PREFIX = "tke_"
SECRET_BYTES = 32
TOKEN = re.compile(r"tke_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
MAX_ACCOUNTS = 1000
MAX_LABEL = 200


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated key (never the key itself)."""

    key_id: str
    role: str
    accounts: tuple[str, ...]
    label: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.key_id}" + (f" ({self.label})" if self.label else "")

    def covers(self, account_id: str) -> bool:
        """Whether this key acts for `account_id` (its ids and `prefix*` patterns)."""
        return any(
            account_id.startswith(pattern[:-1]) if pattern.endswith("*") else account_id == pattern
            for pattern in self.accounts
        )


def secret_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def checked_accounts(role: str, accounts: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The accounts a key of `role` may be bound to; raises FieldError."""
    if role not in ROLES:
        raise FieldError(Reason.INVALID_FIELD, "role", f"one of {', '.join(ROLES)}")
    if role in (CLIENT, BANK) and not accounts:
        message = f"a {role.lower()} key needs at least one account"
        raise FieldError(Reason.MISSING_FIELD, "accounts", message)
    if role in (OPERATOR, AUDITOR) and accounts:
        message = f"a {role.lower()} key is not bound to accounts"
        raise FieldError(Reason.INVALID_FIELD, "accounts", message)
    if len(accounts) > MAX_ACCOUNTS:
        message = f"at most {MAX_ACCOUNTS}"
        raise FieldError(Reason.INVALID_FIELD, "accounts", message)
    for account in accounts:
        if role == CLIENT and account.endswith("*"):  # "*" alone: every user account
            prefix = account[:-1]
            if "*" in prefix or not prefix.isprintable() or " " in prefix:
                message = f"{account!r} is not an id or a prefix ending in '*'"
                raise FieldError(Reason.INVALID_FIELD, "accounts", message)
        else:
            fields.account_id(account, "accounts")
    return tuple(accounts)


def new_key(
    role: str, accounts: list[str], label: str, actor: str, now: datetime
) -> tuple[str, dict[str, Any]]:
    """(the key, shown once; its ApiKey record, which holds only its hash)."""
    bound = checked_accounts(role, accounts)
    if len(label) > MAX_LABEL or not label.isprintable():
        raise FieldError(Reason.INVALID_FIELD, "label", f"printable, at most {MAX_LABEL}")
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    token = f"{TOKEN_PREFIX}{key_id}_{secret}"
    record = {
        "key_id": key_id,
        "role": role,
        "accounts": list(bound),
        "label": label,
        "secret_sha256": secret_sha256(token),
        "status": "ACTIVE",
        "actor": actor,
        "changed_at": now,
    }
    return token, record


def revoked(record: dict[str, Any], actor: str, now: datetime) -> dict[str, Any]:
    return {**record, "status": "REVOKED", "actor": actor, "changed_at": now}


def key_id_of(token: str) -> str | None:
    match = TOKEN.fullmatch(token)
    return match.group(1) if match else None


class KeyRing:
    """Every key's newest record, folded from the api-keys topic."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def fold(self, record: dict[str, Any]) -> None:
        current = self.records.get(record["key_id"])
        if current is not None and current["status"] == "REVOKED":
            return  # final
        if current is not None and current["secret_sha256"] != record["secret_sha256"]:
            return  # a key's secret never changes
        self.records[record["key_id"]] = record

    def authenticate(self, token: str) -> Principal | None:
        """The key's principal if `token` is an active key, else None."""
        key_id = key_id_of(token)
        record = self.records.get(key_id) if key_id else None
        expected = record["secret_sha256"] if record else "0" * 64
        matches = hmac.compare_digest(expected, secret_sha256(token))  # same time either way
        if record is None or not matches or record["status"] != "ACTIVE":
            return None
        return Principal(
            record["key_id"], record["role"], tuple(record["accounts"]), record["label"]
        )

    def listing(self) -> list[dict[str, Any]]:
        """Every key without its hash, oldest first."""
        shown = [
            {k: v for k, v in record.items() if k != "secret_sha256"}
            for record in self.records.values()
        ]
        return sorted(shown, key=lambda r: (r["changed_at"], r["key_id"]))
