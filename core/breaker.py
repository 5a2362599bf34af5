"""The circuit breaker's rules: scopes, states, what halts or suspends, and the policy.

Scopes: `global`, or `asset:<code>`. States: OPEN (Critical: nothing is paid until an
operator resets), SUSPENDED (Significant: new payouts of the asset are refused), CLOSED.
A payout of an asset is held while either its asset scope or the global one is OPEN, and
refused while either is SUSPENDED. `reconciliation_change` is the policy reconciliation
follows after each check (pure: the I/O is `topics.breaker`'s): Critical opens the global
breaker, Significant suspends the asset, a level below lifts a suspension reconciliation
itself made (never an operator's, never an OPEN breaker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import NamedTuple


class State(StrEnum):
    OPEN = "OPEN"
    SUSPENDED = "SUSPENDED"
    CLOSED = "CLOSED"


GLOBAL_SCOPE = "global"
ASSET_SCOPE_PREFIX = "asset:"
# the level each state is published with (reconciliation's own levels for its changes)
STATE_LEVELS = {State.OPEN: "CRITICAL", State.SUSPENDED: "SIGNIFICANT", State.CLOSED: "OK"}


def asset_scope(asset_code: str) -> str:
    return f"{ASSET_SCOPE_PREFIX}{asset_code}"


def scopes_of(asset_code: str) -> tuple[str, str]:
    """The scopes whose state applies to a payout of the asset."""
    return (GLOBAL_SCOPE, asset_scope(asset_code))


def scope_problem(scope: object, asset_codes: Iterable[str]) -> str | None:
    """Why `scope` names no breaker scope ('global' or 'asset:<configured code>')."""
    if scope == GLOBAL_SCOPE:
        return None
    asset_scope_given = isinstance(scope, str) and scope.startswith(ASSET_SCOPE_PREFIX)
    if asset_scope_given and scope.removeprefix(ASSET_SCOPE_PREFIX) in set(asset_codes):
        return None
    return f"must be 'global' or 'asset:<a configured asset>', not {repr(scope)[:60]}"


def halted(states: Mapping[str, str], asset_code: str) -> bool:
    """Whether a payout of the asset is held (a breaker OPEN for it or globally)."""
    return any(states.get(scope) == State.OPEN for scope in scopes_of(asset_code))


def suspended(states: Mapping[str, str], asset_code: str) -> bool:
    """Whether new payouts of the asset are refused (SUSPENDED for it or globally)."""
    return any(states.get(scope) == State.SUSPENDED for scope in scopes_of(asset_code))


class Change(NamedTuple):
    scope: str
    state: State
    level: str


def reconciliation_change(
    level: str,
    asset_code: str,
    global_state: str | None,
    asset_state: str | None,
    asset_state_actor: str | None,
    component: str,
) -> Change | None:
    """The breaker change a reconciliation check at `level` calls for (None: none)."""
    if level == "CRITICAL":
        return None if global_state == State.OPEN else Change(GLOBAL_SCOPE, State.OPEN, level)
    scope = asset_scope(asset_code)
    if level == "SIGNIFICANT":
        if asset_state in (State.SUSPENDED, State.OPEN):
            return None
        return Change(scope, State.SUSPENDED, level)
    if asset_state == State.SUSPENDED and asset_state_actor == component:
        return Change(scope, State.CLOSED, level)
    return None
