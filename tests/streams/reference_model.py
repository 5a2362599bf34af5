"""An independent reference model of the ledger's balances (WEI: fee 2, failure fee 1).

Written from the specification, not from the engine's code, for model-based tests:
deposits credit once per transaction; a withdrawal reserves amount + fee if available;
a confirmed payout debits amount + fee; a failed one debits the failure fee; an internal
transfer moves the amount if available. Ids seen before are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

FEE = 2
FAILURE_FEE = 1


@dataclass
class ReferenceModel:
    balance: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reserved: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    payouts: dict[str, tuple[str, int, str]] = field(
        default_factory=dict
    )  # id -> acct, total, state
    seen: set[str] = field(default_factory=set)
    operator_assets: int = 0
    fees: int = 0

    def deposit(self, account: str, tx: str, amount: int) -> None:
        if ("deposit", tx) not in self.seen:
            self.seen.add(("deposit", tx))
            self.balance[account] += amount
            self.operator_assets += amount

    def withdraw(self, account: str, request_id: str, amount: int) -> None:
        if ("request", request_id) in self.seen:
            return
        self.seen.add(("request", request_id))
        if self.balance[account] - self.reserved[account] >= amount + FEE:
            self.reserved[account] += amount + FEE
            self.payouts[f"po:{account}:{request_id}"] = (account, amount, "PREPARED")

    def payout_result(self, payout_id: str, confirmed: bool, network_fee: int) -> None:
        if payout_id not in self.payouts or self.payouts[payout_id][2] != "PREPARED":
            return
        account, amount, _ = self.payouts[payout_id]
        self.reserved[account] -= amount + FEE
        if confirmed:
            self.balance[account] -= amount + FEE
            self.operator_assets -= amount + network_fee
            self.fees += FEE - network_fee
        else:
            self.balance[account] -= FAILURE_FEE
            self.fees += FAILURE_FEE
        self.payouts[payout_id] = (account, amount, "DONE")

    def transfer(self, account: str, request_id: str, amount: int, to: str) -> None:
        if ("request", request_id) in self.seen:
            return
        self.seen.add(("request", request_id))
        if self.balance[account] - self.reserved[account] >= amount:
            self.balance[account] -= amount
            self.balance[to] += amount
