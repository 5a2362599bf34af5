"""Deposit-address bindings as every consumer of address-bindings folds them.

Owns the rule that decides which account a deposit address (or a bank deposit reference)
belongs to, so the chain watchers and the bank connector agree: bindings are taken in
topic order; one that is malformed (an address invalid for its chain, an invalid account
id) is ignored; the first binding of an address wins, and a later one to another account
is ignored (logged and counted), never moving an address silently. A binding of the same
address to the same account again changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core import fields
from core.addresses import binding_problem
from core.fields import FieldError

log = logging.getLogger(__name__)


class Bindings:
    def __init__(
        self, chain: str, normalize: Callable[[str], str] = str, network: str = "bitcoin"
    ) -> None:
        self.chain = chain
        self.normalize = normalize
        self.network = network
        self.addresses: dict[str, str] = {}  # normalised address -> account id
        self.refused = 0  # bindings ignored: malformed or conflicting

    def problem(self, value: dict[str, Any]) -> str | None:
        """Why a binding of this chain is not taken (None: it is, or already was)."""
        problem = binding_problem(self.chain, value.get("address"), self.network)
        if problem:
            return f"address: {problem}"
        try:
            fields.account_id(value.get("account_id"))
        except FieldError as error:
            return str(error)
        bound = self.addresses.get(self.normalize(value["address"]))
        if bound is not None and bound != value["account_id"]:
            return f"address: already bound to another account ({bound})"
        return None

    def fold(self, value: dict[str, Any]) -> bool:
        """Take one address-bindings record; True if it binds (or re-binds the same way)."""
        if value.get("chain") != self.chain:
            return False
        problem = self.problem(value)
        if problem:
            self.refused += 1
            log.warning("address binding %r ignored: %s", value.get("address"), problem)
            return False
        self.addresses[self.normalize(value["address"])] = value["account_id"]
        return True

    def account_for(self, address: str) -> str | None:
        return self.addresses.get(self.normalize(address)) if address else None
