"""Deposit-address bindings as every consumer of address-bindings folds them.

Owns the rule that decides which account a deposit address (or a bank deposit reference)
belongs to, so the chain watchers, the binder and the bank connector agree. Bindings are
taken in topic order (one address is one key, so its bindings have one order). One that
is malformed (an address invalid for its chain, an invalid account id, an expiry not after
its start) is ignored, logged and counted; so is one that would move an address from a
binding still live at its `bound_at` to another account: an address never moves silently.
A binding of the same address to the same account while it lives changes nothing.

A binding made by hand has no expiry: it holds from then on (and, as its address's first,
for every block before it too). A pool binding (`core.address_pool`) holds from `bound_at`
until `expires_at`, and a deposit belongs to the account bound at its block's time
(`account_at`): the binding that holds for the whole second the block is stamped with. A
transfer before the first binding, after an expiry, or in a second a binding begins or
ends in (the block may have been made before or after that moment) waits in suspense,
never credited to a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core import fields
from core.addresses import binding_problem
from core.fields import FieldError

log = logging.getLogger(__name__)

BLOCK_TIME_RESOLUTION_MS = 1000  # block timestamps are whole seconds


@dataclass(frozen=True)
class Binding:
    account_id: str
    bound_ms: int
    expires_ms: int | None  # None: a binding made by hand, which never ends

    def live_at(self, time_ms: int) -> bool:
        return self.expires_ms is None or self.bound_ms <= time_ms < self.expires_ms

    def covers_second(self, second_ms: int, first: bool) -> bool:
        """Whether it holds for the whole second starting at `second_ms`: a block stamped
        with that second was made at some moment in it (a binding by hand that is its
        address's first holds for every block, before it too)."""
        if self.expires_ms is None and first:
            return True
        end = second_ms + BLOCK_TIME_RESOLUTION_MS
        return self.bound_ms <= second_ms and (self.expires_ms is None or end <= self.expires_ms)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: object) -> int | None:
    """Milliseconds since the epoch, exactly (integer arithmetic, no float rounding)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (value - EPOCH) // timedelta(milliseconds=1)
    return None


class Bindings:
    def __init__(
        self, chain: str, normalize: Callable[[str], str] = str, network: str = "bitcoin"
    ) -> None:
        self.chain = chain
        self.normalize = normalize
        self.network = network
        self.history: dict[str, list[Binding]] = {}  # normalised address -> oldest first
        self.addresses: dict[str, str] = {}  # normalised address -> newest binding's account
        self.refused = 0  # bindings ignored: malformed or conflicting
        self.version = 0  # bindings taken so far: what a cache of them is keyed by

    def history_of(self, address: str) -> list[Binding]:
        return self.history.get(self.normalize(address), [])

    def problem(self, value: dict[str, Any]) -> str | None:
        """Why a binding of this chain is not taken (None: it is, or already was)."""
        problem = binding_problem(self.chain, value.get("address"), self.network)
        if problem:
            return f"address: {problem}"
        try:
            fields.account_id(value.get("account_id"))
        except FieldError as error:
            return str(error)
        binding = self._binding(value)
        if binding.expires_ms is not None and binding.expires_ms <= binding.bound_ms:
            return "expires_at: must be after bound_at"
        history = self.history_of(value["address"])
        if history:
            newest = history[-1]
            if newest.live_at(binding.bound_ms) and newest.account_id != binding.account_id:
                return f"address: already bound to another account ({newest.account_id})"
            if binding.bound_ms < newest.bound_ms and newest.account_id != binding.account_id:
                return "bound_at: before the address's newest binding"
        return None

    @staticmethod
    def _binding(value: dict[str, Any]) -> Binding:
        return Binding(
            value["account_id"], epoch_ms(value.get("bound_at")) or 0,
            epoch_ms(value.get("expires_at")),
        )  # fmt: skip

    def fold(self, value: dict[str, Any]) -> bool:
        """Take one address-bindings record; True if it binds (or re-binds the same way)."""
        if value.get("chain") != self.chain:
            return False
        problem = self.problem(value)
        if problem:
            self.refused += 1
            log.warning("address binding %r ignored: %s", value.get("address"), problem)
            return False
        address = self.normalize(value["address"])
        binding = self._binding(value)
        history = self.history.setdefault(address, [])
        newest = history[-1] if history else None
        if newest is None or not (
            newest.account_id == binding.account_id and newest.live_at(binding.bound_ms)
        ):
            history.append(binding)
            self.version += 1
        self.addresses[address] = binding.account_id
        return True

    def account_for(self, address: str) -> str | None:
        """The account of an address's newest binding (bank references: their only one)."""
        return self.addresses.get(self.normalize(address)) if address else None

    def account_at(self, address: str, block_second_ms: int) -> str | None:
        """The account bound to `address` for the whole second a block is stamped with."""
        history = self.history_of(address)
        covering = {b.account_id for i, b in enumerate(history)
                    if b.covers_second(block_second_ms, i == 0)}  # fmt: skip
        return covering.pop() if len(covering) == 1 else None
