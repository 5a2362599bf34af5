"""What the engine recorded of its wallets' chain events, and what the ledger implies the
chain holds at a block (pure: no I/O).

Owns `ChainRecords`, folded from payout-results and sweep-results (the transaction each
payout or sweep was sent as, recorded before it is broadcast), wallet-outflows (the block
of every transaction out of an operator wallet, and what it took of each asset) and
chain-observations (each deposit's block and the head it was confirmed at), and
`expected_holdings`: what the operator's wallets should hold of an asset at block H, from
the ledger's movements of `operator:<asset>:assets` by cause (`streams.ledger_view`),
each placed at its chain event:

  expected(H) = ledger movements whose event is at a block <= H (a deposit: its block, and
                confirmed by the balance record's head, else it counts as unconfirmed below;
                a payout's or a sweep's result: its transaction's block; a movement of no
                known event counts: the ledger says the operator holds it, so the chain
                must show it)
              + deposits confirmed by that head at blocks <= H that the ledger has not yet
                credited, for IN_FLIGHT_BLOCKS after their confirmation (then a deposit the
                ledger refused, such as dust, shows as a surplus)
              + the record's unconfirmed deposits (on the chain, below their security level)
              - outflows at blocks <= H of payouts the executors recorded that the ledger has
                not yet settled (a payout stays in flight until its result is applied; one
                reported FAILED only for the network fee the ledger will post: whatever else
                left the wallet is a deficit, such as a double payment)
              - the network fee of sweeps the sweeper recorded that the ledger has not yet
                settled (what left the deposit address less what reached the hot or cold
                wallet, which stays the operator's), for IN_FLIGHT_BLOCKS after its block

Everything the ledger can have applied was published before the balance record was read
and the views caught up after the ledger's was read, so no movement lacks its event.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core import ids
from topics import catalogue

ZERO = Decimal(0)
IN_FLIGHT_BLOCKS = 64  # a confirmed deposit not credited after this many blocks is a surplus
SETTLED = ("CONFIRMED", "FAILED")


@dataclass
class Deposit:
    asset: str
    block: int
    confirmed_at: int  # the head its CONFIRMED observation was counted at
    amount: Decimal
    removed: bool = False


@dataclass
class Sweep:
    asset: str
    amount: Decimal  # what it moves between the operator's wallets
    status: str
    fee: Decimal  # FAILED: the network fee the ledger will post (in the chain's coin)


@dataclass(frozen=True)
class Outflow:
    tx_hash: str
    asset: str
    block: int
    amount: Decimal


class ChainRecords:
    def __init__(self) -> None:
        self.hashes: dict[str, str] = {}  # transaction hash (lower) -> the payout sent as it
        self.sent: dict[str, set[str]] = {}  # payout id -> the transactions recorded for it
        # payout id -> (network fee, its asset or None: the payout's) of a FAILED result
        self.failed: dict[str, tuple[Decimal, str | None]] = {}
        self.deposits: dict[str, Deposit] = {}  # deposit cause id -> its chain event
        self.blocks: dict[str, int] = {}  # transaction hash (lower) -> block of its outflow
        self.outflows: dict[tuple[str, str], Outflow] = {}  # (hash, asset) ->
        self.sweeps: dict[str, Sweep] = {}  # sweep id -> its newest result
        self.sweep_hashes: dict[str, str] = {}  # transaction hash (lower) -> its sweep
        self.sweep_sent: dict[str, str] = {}  # sweep id -> its transaction hash (lower)

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.PAYOUT_RESULTS and value.get("tx_hash"):
            self.hashes[value["tx_hash"].lower()] = value["payout_id"]
            self.sent.setdefault(value["payout_id"], set()).add(value["tx_hash"].lower())
        if topic == catalogue.PAYOUT_RESULTS and value.get("status") == "FAILED":
            self.failed[value["payout_id"]] = (
                value.get("network_fee") or ZERO,
                value.get("network_fee_asset"),
            )
        elif topic == catalogue.SWEEP_RESULTS:
            self.sweep_hashes[value["tx_hash"].lower()] = value["sweep_id"]
            self.sweep_sent[value["sweep_id"]] = value["tx_hash"].lower()
            current = self.sweeps.get(value["sweep_id"])
            if current is None or current.status == "SUBMITTED":
                fee = value.get("network_fee") or ZERO
                self.sweeps[value["sweep_id"]] = Sweep(
                    value["asset"], value["amount"], value["status"], fee
                )
        elif topic == catalogue.WALLET_OUTFLOWS:
            tx_hash = value["tx_hash"].lower()
            self.blocks[tx_hash] = value["block_number"]
            self.outflows[(tx_hash, value["asset"])] = Outflow(
                tx_hash, value["asset"], value["block_number"], value["amount"]
            )
        elif topic == catalogue.CHAIN_OBSERVATIONS:
            cause = ids.deposit_command(value["deposit_id"], "CONFIRMED", "")
            if value["status"] == "CONFIRMED":
                confirmed_at = value["block_number"] + value["confirmations"] - 1
                self.deposits[cause] = Deposit(
                    value["asset"], value["block_number"], confirmed_at, value["amount"]
                )
            elif value["status"] == "REMOVED" and cause in self.deposits:
                self.deposits[cause].removed = True

    def recorded(self, tx_hash: str) -> bool:
        """Whether a payout executor or a sweeper recorded this transaction before sending
        it."""
        return tx_hash.lower() in self.hashes or tx_hash.lower() in self.sweep_hashes

    def unexplained(self, asset: str, height: int) -> list[Outflow]:
        """The outflows of `asset` at blocks up to `height` that no payout recorded, newest
        first (what a deficit is most likely made of: invariant 4 calls each a theft)."""
        found = [
            o
            for o in self.outflows.values()
            if o.asset == asset and o.block <= height and not self.recorded(o.tx_hash)
        ]
        return sorted(found, key=lambda o: o.block, reverse=True)

    def event_block(self, cause: str) -> int | None:
        """The block of the transaction a payout's or a sweep's result was sent as (None:
        not seen leaving a wallet yet); a cause that is neither raises KeyError."""
        if cause.startswith(ids.SWEEP_PREFIX):
            sweep = self.sweep_sent.get(cause.removeprefix(ids.SWEEP_PREFIX))
            sent = [] if sweep is None else [sweep]
        elif cause.startswith(ids.PAYOUT_RESULT_PREFIX):
            payout_id = cause.removeprefix(ids.PAYOUT_RESULT_PREFIX).rpartition(":")[0]
            sent = list(self.sent.get(payout_id, ()))
        else:
            raise KeyError(cause)
        return min((self.blocks[h] for h in sent if h in self.blocks), default=None)

    def sweep_in_flight(self, outflow: Outflow, causes: dict[str, Decimal], height: int):
        """What a recorded sweep's outflow takes from the operator's wallets until the
        ledger applies its result: the fee (what left, less what reached the hot or cold
        wallet; all of it when less left than the sweep moves: it reverted), for
        IN_FLIGHT_BLOCKS after its block (then a result the ledger never applied shows)."""
        sweep_id = self.sweep_hashes[outflow.tx_hash]
        if ids.sweep_result_command(sweep_id) in causes:
            return ZERO  # settled: its fee is placed with the ledger's movements
        if height - outflow.block > IN_FLIGHT_BLOCKS:
            return ZERO
        sweep = self.sweeps[sweep_id]
        if sweep.status == "FAILED":
            return min(sweep.fee, outflow.amount)
        moved = sweep.asset == outflow.asset and outflow.amount > sweep.amount
        return outflow.amount - (sweep.amount if moved else ZERO)


@dataclass(frozen=True)
class Holdings:
    """One balance record's figures: what the chain shows, what the ledger implies."""

    chain: Decimal
    expected: Decimal
    ledger: Decimal  # the ledger's operator assets as read
    in_flight: Decimal  # deposits and payouts not yet applied, net

    @property
    def difference(self) -> Decimal:
        return self.chain - self.expected


def expected_holdings(
    balance: dict[str, Any], causes: dict[str, Decimal], records: ChainRecords
) -> Holdings:
    """`balance` (a WalletBalance) against the ledger's movements of its asset by cause."""
    asset, height, head = balance["asset"], balance["block_number"], balance["head"]
    placed = ZERO
    for cause, amount in causes.items():
        deposit = records.deposits.get(cause)
        if deposit is not None:
            if deposit.block <= height and deposit.confirmed_at <= head:
                placed += amount
            continue
        try:
            block = records.event_block(cause)
        except KeyError:
            placed += amount  # no chain event known: the chain must show it all the same
            continue
        if block is not None and block <= height:
            placed += amount
    in_flight = ZERO
    for cause, deposit in records.deposits.items():
        if (
            deposit.asset == asset
            and not deposit.removed
            and cause not in causes
            and deposit.block <= height
            and head - IN_FLIGHT_BLOCKS <= deposit.confirmed_at <= head
        ):
            in_flight += deposit.amount
    for outflow in records.outflows.values():
        if outflow.asset != asset or outflow.block > height:
            continue
        if outflow.tx_hash in records.sweep_hashes:
            in_flight -= records.sweep_in_flight(outflow, causes, height)
            continue
        payout_id = records.hashes.get(outflow.tx_hash)
        if payout_id is None:
            continue
        if any(ids.payout_result_command(payout_id, s) in causes for s in SETTLED):
            continue  # settled: placed above
        failed = records.failed.get(payout_id)
        if failed is None:
            in_flight -= outflow.amount  # the ledger will commit what left
        elif failed[1] in (None, asset):
            in_flight -= min(failed[0], outflow.amount)  # it will post the fee alone
    expected = placed + in_flight + balance["unconfirmed"]
    return Holdings(balance["balance"], expected, sum(causes.values(), ZERO), in_flight)
