"""The whole ledger as nets per ledger account, folded from ledger-entries.

Every worker reads every partition of ledger-entries from offset 0 (`topics.view`), so the
invariants watch and reconciliation see the whole ledger, not their partitions' share.
A transaction re-emitted after a crash has the sequence it had (the chain of its account),
so it is counted once: a posting applies only above its account's highest sequence.

Besides the nets, the view keeps the movements of bank-backed assets' operator accounts by
bank reference, which end-of-day reconciliation matches statement entries against, and
those of chain assets' operator accounts by cause (the command that posted them: a deposit,
a payout's result), which wallet reconciliation places at their blocks
(`streams.reconciliation.chain_records`).

The worker's own ledger counts its transactions here as it emits them (`count_emitted`,
in the form they have when read back, each only if it is the next of its account's chain)
and marks each record with its sequence (a header): reading them back, the view skips
them undecoded (decoding every entry again took a sixth of a busy worker's time). Other
workers' entries are decoded as before.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Context, Decimal
from typing import Any

from confluent_kafka import Message

from core import ids
from core.accounts import operator_assets
from streams.app import Engine
from streams.ledger.batch import SEQUENCE_HEADER
from streams.reconciliation.core import Movement
from topics import catalogue
from topics.view import TopicView

ZERO = Decimal(0)
WIRE_QUANTUM = Decimal(1).scaleb(-18)  # amounts on the wire have scale 18 (LedgerTransaction)
WIRE_CONTEXT = Context(prec=38)  # and precision 38


class LedgerNets:
    def __init__(self, bank_backed: frozenset[str] = frozenset()) -> None:
        self.bank_backed = bank_backed  # assets held at a bank: their movements are kept
        self.nets: dict[str, Decimal] = defaultdict(Decimal)  # ledger account -> debits - credits
        self.sequences: dict[str, int] = {}  # account id -> highest sequence counted
        self.bank_movements: dict[str, list[Movement]] = defaultdict(list)  # asset ->
        self.bank_references: dict[str, set[str]] = defaultdict(set)  # asset -> lower refs
        # chain asset -> cause id -> its net on operator assets (debits - credits)
        self.chain_causes: dict[str, dict[str, Decimal]] = defaultdict(dict)
        self.transactions = 0

    def add(self, _topic: str, transaction: dict[str, Any]) -> None:
        account = transaction["account_id"]
        if transaction["sequence"] <= self.sequences.get(account, 0):
            return
        self.sequences[account] = transaction["sequence"]
        self.transactions += 1
        asset = transaction["asset"]
        operator = operator_assets(asset)
        for posting in transaction["postings"]:
            sign = 1 if posting["direction"] == "DEBIT" else -1
            self.nets[posting["ledger_account"]] += sign * posting["amount"]
            if posting["ledger_account"] == operator:
                self.keep_operator_movement(transaction, posting["direction"], posting["amount"])

    def keep_operator_movement(self, transaction: dict[str, Any], direction: str, amount) -> None:
        """A posting to the operator's assets: by bank reference for a bank-backed asset,
        by cause for a chain asset."""
        asset, cause = transaction["asset"], transaction["cause_id"]
        if asset not in self.bank_backed:
            causes = self.chain_causes[asset]
            causes[cause] = causes.get(cause, ZERO) + (amount if direction == "DEBIT" else -amount)
            return
        reference = ids.statement_reference(cause)
        self.bank_references[asset].add(reference.lower())
        self.bank_movements[asset].append(
            Movement(
                transaction["transaction_id"],
                reference,
                "CRDT" if direction == "DEBIT" else "DBIT",
                amount,
                transaction["created_at"].date().isoformat(),
            )
        )

    def add_emitted(self, transaction: dict[str, Any]) -> None:
        """Add a transaction as the ledger emits it, in the form it has when read back.

        Only the next of its account's chain: while the view has not read the account's
        earlier transactions (a worker starting, partitions moving), counting this one
        would make the view skip those; it is then counted when read back, like any other.
        """
        if transaction["sequence"] != self.sequences.get(transaction["account_id"], 0) + 1:
            return
        as_read = {
            **transaction,
            "postings": [
                {**posting, "amount": WIRE_CONTEXT.quantize(posting["amount"], WIRE_QUANTUM)}
                for posting in transaction["postings"]
            ],
        }
        self.add(catalogue.LEDGER_ENTRIES, as_read)

    def counted(self, message: Message) -> bool:
        """True for an entry whose sequence header shows it counted: skip it undecoded."""
        for name, value in message.headers() or ():
            if name == SEQUENCE_HEADER:
                return int(value) <= self.sequences.get(message.key().decode(), 0)
        return False

    def operator_balance(self, asset: str) -> Decimal:
        """What the operator should hold of the asset: deposits less payouts and chain fees."""
        return self.nets.get(operator_assets(asset), ZERO)


class LedgerView:
    """The whole ledger's nets, folded on a worker (`LedgerNets` behind a `TopicView`)."""

    def __init__(self, engine: Engine) -> None:
        self.nets = LedgerNets(engine.assets.bank_backed)
        self.view: TopicView = engine.serve_view(
            [catalogue.LEDGER_ENTRIES], self.nets.add, "ledger-view", folded=self.nets.counted
        )

    @property
    def lock(self):
        return self.view.lock

    def count_emitted(self, transaction: dict[str, Any]) -> None:
        """Count a transaction this worker's ledger emits (then skipped when read back)."""
        with self.view.lock:
            self.nets.add_emitted(transaction)
