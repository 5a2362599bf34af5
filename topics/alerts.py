"""Operator alerts: the one builder of `Alert` values (the `alerts` topic).

Every alert has a deterministic id (its kind and what raised it), so an alert emitted
again after a crash is recognisably the same one; details are strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


def alert(
    kind: str,
    severity: str,
    message: str,
    *,
    raised_by: str,
    raised_at: datetime,
    account_id: str | None = None,
    details: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """An Alert value; `raised_by` (a command, a check, a finding) makes its id."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    return {
        "alert_id": f"{kind}:{raised_by}",
        "kind": kind,
        "severity": severity,
        "account_id": account_id,
        "message": message,
        "details": {name: str(value) for name, value in (details or {}).items()},
        "raised_at": raised_at,
    }
