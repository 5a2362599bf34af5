"""Operator-wallet outflows: every transaction that takes value out of an operator wallet
must be one the engine prepared (the Storiqa invariant "each balance decrease on a chain
has a corresponding pending transaction in our system").

Owns the check of one `WalletOutflow` (the chain watchers publish one for each such
transaction in a block, `connectors.chain_watcher`). It is explained when a payout
executor recorded that very transaction: the SUBMITTED payout result names its hash and is
acknowledged before the transaction is sent (`connectors.payout_executor`), so a payout's
record always precedes its block. Any other outflow is CRITICAL at once: a result at level
CRITICAL (tier WALLET_ONCHAIN, on reconciliation-results beside the bank tiers), an
UNEXPLAINED_OUTFLOW discrepancy, the alert `wallet.unexplained_outflow` naming the
transaction, and the global breaker OPEN (nothing more is paid until an operator resets
it). Before an outflow is called unexplained the payout results are read to their end;
if they cannot be, it is called unexplained all the same (a false alarm costs a reset, a
missed theft costs the wallet). Ids are deterministic: a redelivered outflow emits the same
records again, and the breaker is opened once.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from core.breaker import GLOBAL_SCOPE, asset_scope, reconciliation_change
from streams import metrics
from streams.app import Engine
from streams.reconciliation.core import CRITICAL, OK, Check
from streams.reconciliation.state import ReconciliationView
from streams.reconciliation.tiers import COMPONENT, Outputs, discrepancy
from topics import catalogue
from topics.breaker import breaker_record

log = logging.getLogger(__name__)

TIER = "WALLET_ONCHAIN"
CATCH_UP_S = 30.0  # how long the payout results may take to be read to their end


class RecordedTransactions:
    """The transactions payout executors recorded (SUBMITTED or later), by hash."""

    def __init__(self) -> None:
        self.hashes: set[str] = set()

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.PAYOUT_RESULTS and value.get("tx_hash"):
            self.hashes.add(value["tx_hash"].lower())


class WalletGuard:
    """Checks wallet outflows against the recorded payouts; opens the breaker on a theft."""

    def __init__(self, engine: Engine, state: ReconciliationView) -> None:
        self.state = state
        self.recorded = RecordedTransactions()
        self.view = engine.serve_view(
            [catalogue.PAYOUT_RESULTS], self.recorded.fold, "wallet-guard-payouts"
        )

    async def explained(self, tx_hash: str) -> bool:
        with self.view.lock:
            if tx_hash.lower() in self.recorded.hashes:
                return True
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.view.wait_caught_up, CATCH_UP_S):
            log.error("payout results not read to their end; %s taken as unexplained", tx_hash)
        with self.view.lock:
            return tx_hash.lower() in self.recorded.hashes

    async def check(self, outflow: dict[str, Any], outputs: Outputs) -> None:
        tx_hash, wallet, asset = outflow["tx_hash"], outflow["wallet_address"], outflow["asset"]
        amount: Decimal = outflow["amount"]
        explained = await self.explained(tx_hash)
        check = Check(
            f"wallet:{outflow['outflow_id']}",
            TIER,
            wallet,
            asset,
            amount if explained else Decimal(0),  # what the engine prepared to send
            amount,  # what the chain shows leaving
            OK if explained else CRITICAL,
        )
        outputs.emit(catalogue.RECONCILIATION_RESULTS, wallet, check.result(outputs.now))
        metrics.reconciliation_checks.labels(TIER, check.level).inc()
        if explained:
            return
        where = f"{outflow['chain']} block {outflow['block_number']}"
        message = (
            f"{amount} {asset} left {outflow['wallet_role'].lower()} wallet {wallet} in "
            f"{tx_hash} ({where}) to {outflow['to_address'] or 'unknown'}: no payout or "
            "sweep of the engine is that transaction"
        )
        log.critical("unexplained outflow: %s", message)
        outputs.emit(
            catalogue.DISCREPANCIES,
            wallet,
            discrepancy(
                f"{check.check_id}:UNEXPLAINED_OUTFLOW",
                wallet,
                "UNEXPLAINED_OUTFLOW",
                "CRITICAL",
                Decimal(0),
                amount,
                -amount,
                f"chain/{outflow['chain']}",
                tx_hash,
                outputs.now,
            ),
        )
        outputs.alert(
            "wallet.unexplained_outflow",
            "CRITICAL",
            wallet,
            message,
            check_id=check.check_id,
            tx_hash=tx_hash,
            chain=outflow["chain"],
            block_number=outflow["block_number"],
            asset=asset,
            amount=amount,
        )
        self.open_breaker(asset, check.check_id, message, outputs)

    def open_breaker(self, asset: str, check_id: str, message: str, outputs: Outputs) -> None:
        with self.state.lock:
            global_state = self.state.state.breaker_state(GLOBAL_SCOPE) or {}
            asset_state = self.state.state.breaker_state(asset_scope(asset)) or {}
        change = reconciliation_change(
            CRITICAL,
            asset,
            global_state.get("state"),
            asset_state.get("state"),
            asset_state.get("actor"),
            COMPONENT,
        )
        if change is not None:
            reason = f"{TIER} {check_id}: {message}"
            outputs.breaker(
                breaker_record(change.scope, change.state, change.level, reason, COMPONENT)
            )
