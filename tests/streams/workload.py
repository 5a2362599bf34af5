"""A large mixed ledger workload whose outcome is independent of processing order.

Phase 1 gives every account an initial deposit. Phase 2 mixes more deposits, affordable
withdrawals (each account's withdrawals and transfers stay within its initial deposit),
unaffordable withdrawals (larger than any balance can be), and internal transfers.
Phase 3 reports every affordable payout, confirmed or failed. Every phase waits for the
previous one, so the exact final balances follow from the inputs alone (`expected`),
whatever crashes, duplicates or rebalances happen in between.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from tests.ledger_inputs import internal_transfer, observation, payout_result, withdrawal
from topics import catalogue

INITIAL_DEPOSIT = 1000
FEE = 2
FAILURE_FEE = 1
UNAFFORDABLE = 10**7

Message = tuple[str, str, dict]  # topic, key, record


@dataclass
class Workload:
    seed: int
    accounts: int = 1000
    deposits: int = 17_000
    withdrawals: int = 8_000
    unaffordable: int = 4_000
    transfers: int = 12_000
    phase1: list[Message] = field(default_factory=list)
    phase2: list[Message] = field(default_factory=list)
    phase3: list[Message] = field(default_factory=list)
    balance: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    operator_assets: int = 0
    fees: int = 0
    withdrawal_ids: list[str] = field(default_factory=list)
    transfer_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        names = [f"acc-{n:04d}" for n in range(self.accounts)]
        spend = defaultdict(int)
        for name in names:
            self._deposit(self.phase1, name, INITIAL_DEPOSIT, f"0xinit{name}")
        for n in range(self.deposits):
            self._deposit(self.phase2, rng.choice(names), rng.randint(1, 50), f"0xdep{n:06d}")
        payouts = []
        for n in range(self.withdrawals):
            name, amount = rng.choice(names), rng.randint(1, 20)
            if spend[name] + amount + FEE > INITIAL_DEPOSIT // 2:
                continue
            spend[name] += amount + FEE
            request_id = f"w{n:06d}"
            self.withdrawal_ids.append(request_id)
            self.phase2.append(
                (catalogue.WITHDRAWAL_REQUESTS, name, withdrawal(name, request_id, str(amount)))
            )
            payouts.append((name, request_id, amount))
        for n in range(self.unaffordable):
            name = rng.choice(names)
            request_id = f"big{n:06d}"
            self.withdrawal_ids.append(request_id)
            self.phase2.append(
                (
                    catalogue.WITHDRAWAL_REQUESTS,
                    name,
                    withdrawal(name, request_id, str(UNAFFORDABLE)),
                )
            )
        for n in range(self.transfers):
            source, target, amount = rng.choice(names), rng.choice(names), rng.randint(1, 20)
            if source == target or spend[source] + amount > INITIAL_DEPOSIT // 2:
                continue
            spend[source] += amount
            request_id = f"t{n:06d}"
            self.transfer_ids.append(request_id)
            self.phase2.append(
                (
                    catalogue.TRANSFER_REQUESTS,
                    source,
                    internal_transfer(source, request_id, str(amount), target),
                )
            )
            self.balance[source] -= amount
            self.balance[target] += amount
        rng.shuffle(self.phase2)
        for name, request_id, amount in payouts:
            payout_id = f"po:{name}:{request_id}"
            if rng.random() < 0.8:
                network_fee = rng.randint(0, 1)
                self.phase3.append(
                    (
                        catalogue.PAYOUT_RESULTS,
                        name,
                        payout_result(name, payout_id, "CONFIRMED", str(network_fee)),
                    )
                )
                self.balance[name] -= amount + FEE
                self.operator_assets -= amount + network_fee
                self.fees += FEE - network_fee
            else:
                self.phase3.append(
                    (
                        catalogue.PAYOUT_RESULTS,
                        name,
                        payout_result(name, payout_id, "FAILED", reason="reverted"),
                    )
                )
                self.balance[name] -= FAILURE_FEE
                self.fees += FAILURE_FEE
        rng.shuffle(self.phase3)

    def _deposit(self, phase: list[Message], name: str, amount: int, tx: str) -> None:
        phase.append((catalogue.CHAIN_OBSERVATIONS, name, observation(name, str(amount), tx)))
        self.balance[name] += amount
        self.operator_assets += amount

    @property
    def size(self) -> int:
        return len(self.phase1) + len(self.phase2) + len(self.phase3)

    def expected_balances(self) -> dict[str, Decimal]:
        return {name: Decimal(value) for name, value in self.balance.items()}


def with_noise(messages: list[Message], rng: random.Random, duplicates: float, garbage: float):
    """The messages encoded, with exact duplicates re-sent later and garbage mixed in."""
    from topics.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    encoded = [(topic, key, codec.encode(topic, record)) for topic, key, record in messages]
    noisy = list(encoded)
    for _ in range(int(len(encoded) * duplicates)):
        noisy.insert(rng.randint(0, len(noisy)), rng.choice(encoded))
    for _ in range(int(len(encoded) * garbage)):
        topic, key, _ = rng.choice(encoded)
        noisy.insert(rng.randint(0, len(noisy)), (topic, key, rng.randbytes(rng.randint(0, 40))))
    return noisy
