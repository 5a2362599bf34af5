"""Decoded Avro records as JSON: Decimal as an exact string, time as ISO 8601, bytes as base64."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f")
            if value == value.to_integral()
            else format(value, "f").rstrip("0")
        )
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), separators=(",", ":"), sort_keys=False)
