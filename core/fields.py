"""Field validation shared by every entry point: one grammar per kind of field.

Owns what a valid identifier, date, time and JSON document is, for HTTP, the CLI, bank
files, chain observations and Kafka inputs alike (amounts: `core.money`; addresses:
`core.addresses`). A problem is a `FieldError` with a machine-readable reason and the
field it concerns, raised before anything is produced; no input reaches an unexpected
exception, a slow path or an unbounded size through these functions.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from core.reasons import Reason

# Account ids name a user's ledger accounts (`user:<id>:<asset>`): no ':' (the ledger
# accounts' separator, so no id can look like an operator, clearing or another user's
# account), and a name of the engine's own ledger accounts is refused.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
SUSPENSE_ACCOUNT = "suspense"  # the engine's: deposits no binding attributes wait here
TREASURY_ACCOUNT = "treasury"  # the engine's: what is sent to its hot wallets from outside
ENGINE_HOLDERS = frozenset({SUSPENSE_ACCOUNT, TREASURY_ACCOUNT})  # records no client names
RESERVED_ACCOUNT_IDS = frozenset({"operator", "clearing", "user", "system", "engine"}) | (
    ENGINE_HOLDERS
)
# Request ids are chosen by clients ("order:123"): ':' allowed.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
TX_HASH = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
ASSET_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")
CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217
# Request times: what a client may claim for `created_at` (decides a request's expiry).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TEXT = 1024  # characters of free text kept from one field
MAX_INTEGER_DIGITS = 30  # an integer in JSON input: far above every count and index
MAX_JSON_DEPTH = 32


class FieldError(ValueError):
    """Input refused: `reason` is machine-readable, `field` names what was wrong."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field


def shown(value: object, limit: int = 60) -> str:
    """A value for an error message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def text(data: dict[str, Any], field: str, pattern: re.Pattern[str] | None = None) -> str:
    """A required non-empty string field, matching `pattern` in full if given."""
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise FieldError(Reason.MISSING_FIELD, field, "is required (a non-empty string)")
    if pattern is not None and not pattern.fullmatch(value):
        raise FieldError(Reason.INVALID_FIELD, field, f"has an invalid format: {shown(value)}")
    if pattern is None and len(value) > MAX_TEXT:
        raise FieldError(Reason.INVALID_FIELD, field, f"is longer than {MAX_TEXT} characters")
    return value


def optional_text(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError(Reason.INVALID_FIELD, field, "must be a string")
    if len(value) > MAX_TEXT:
        raise FieldError(Reason.INVALID_FIELD, field, f"is longer than {MAX_TEXT} characters")
    return value


def account_id(value: object, field: str = "account_id") -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(Reason.MISSING_FIELD, field, "is required (a non-empty string)")
    if not ACCOUNT_ID.fullmatch(value):
        raise FieldError(
            Reason.INVALID_FIELD,
            field,
            f"has an invalid format: {shown(value)} (letters, digits and _ . @ -, "
            "at most 128, starting with a letter or digit)",
        )
    if value.lower() in RESERVED_ACCOUNT_IDS:
        raise FieldError(Reason.INVALID_FIELD, field, f"{value!r} is reserved for the engine")
    return value


def holder_account_id(value: object, field: str = "account_id") -> str:
    """An account a ledger record may belong to: a user's, or one of the engine's own
    (suspense, treasury: never one a client names, `account_id` refuses them)."""
    if value in ENGINE_HOLDERS:
        return value
    return account_id(value, field)


def request_id(value: object, field: str = "request_id") -> str:
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise FieldError(Reason.INVALID_FIELD, field, f"has an invalid format: {shown(value)}")
    return value


def count(data: dict[str, Any], field: str, default: int = 0) -> int:
    """A non-negative integer field (an output index, a block number)."""
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise FieldError(Reason.INVALID_FIELD, field, "must be a non-negative integer")
    return value


def iso_date(value: object, field: str) -> date:
    """A calendar date, YYYY-MM-DD (ISO 8601), or a FieldError."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise FieldError(Reason.INVALID_DATE, field, f"must be a date YYYY-MM-DD: {shown(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FieldError(
            Reason.INVALID_DATE, field, f"not a calendar date: {shown(value)}"
        ) from None


def timestamp(value: object, field: str) -> datetime:
    """An ISO 8601 time (UTC when no offset is given) between 2000 and 2100."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FieldError(
                Reason.INVALID_FIELD, field, f"must be an ISO 8601 time: {shown(value)}"
            ) from None
    else:
        raise FieldError(Reason.INVALID_FIELD, field, f"must be an ISO 8601 time: {shown(value)}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise FieldError(Reason.INVALID_FIELD, field, f"out of range: {shown(value)}") from None
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        raise FieldError(
            Reason.INVALID_FIELD, field, f"must be between {EARLIEST_TIME:%Y} and {LATEST_TIME:%Y}"
        )
    return parsed


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(literal)


def load_json(data: bytes | str, *, decimals: bool = False, max_depth: int = MAX_JSON_DEPTH):
    """A JSON document, or FieldError("invalid_json", "json", ...).

    Integers are bounded in length, nesting in depth (checked before parsing, so no
    input reaches the parser's recursion limit), and the text must be UTF-8. With
    `decimals`, numbers with a fraction are read as exact Decimals; otherwise as floats,
    which the amount parser refuses.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FieldError(Reason.INVALID_JSON, "json", "not UTF-8 text") from None
    brackets = data.count("[") + data.count("{")
    if brackets > max_depth and _nesting_depth(data) > max_depth:
        raise FieldError(Reason.INVALID_JSON, "json", f"nested deeper than {max_depth} levels")
    try:
        return json.loads(data, parse_int=_bounded_int, parse_float=Decimal if decimals else float)
    except (ValueError, RecursionError) as error:
        raise FieldError(Reason.INVALID_JSON, "json", f"invalid JSON: {str(error)[:200]}") from None


def _nesting_depth(document: str) -> int:
    """The deepest nesting of arrays and objects, outside strings (one linear pass)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in document:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
