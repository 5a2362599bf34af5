"""The two ways applying a command can end other than well.

`Rejected`: the command cannot be applied (bad input, a conflicting duplicate); it goes
to the dead-letter topic with its reason (and alerts, where an operator must act) and
the record is unchanged. `LedgerInvariantError`: the ledger's own state is wrong, never
bad input; the worker stops rather than go on (raised, never `assert`ed: `python -O`
keeps it).
"""

from __future__ import annotations

from typing import Any


class LedgerInvariantError(RuntimeError):
    """Our own state is wrong (never bad input): the worker stops rather than go on."""


class Rejected(Exception):
    """A command that cannot be applied at all: it goes to the dead-letter topic, with
    `alerts` (e.g. a payout result contradicting the one applied); the record is unchanged."""

    def __init__(self, reason: str, message: str, alerts: list[Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.alerts = alerts or []


class LedgerHole(RuntimeError):
    """Commands of a partition never became readable: applying past them would skip them,
    so the worker starts again from its watermarks."""
