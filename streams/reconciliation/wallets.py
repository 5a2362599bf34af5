"""Operator wallets checked against the chain: Storiqa invariants 4 ("each balance decrease
on a chain has a corresponding pending transaction in our system") and 1 ("each Dr account
balance equals our balance on that blockchain wallet").

Owns the check of one `WalletOutflow` (the chain watchers publish one for each such
transaction in a block, `connectors.chain_watcher`). It is explained when a payout
executor or the sweeper recorded that very transaction: the SUBMITTED payout or sweep
result names its hash and is acknowledged before the transaction is sent
(`connectors.payout_executor`, `connectors.eth_sweeps`), so its record always precedes its
block. Any other outflow is CRITICAL at once: a result at level
CRITICAL (tier WALLET_ONCHAIN, on reconciliation-results beside the bank tiers), an
UNEXPLAINED_OUTFLOW discrepancy, the alert `wallet.unexplained_outflow` naming the
transaction, and the global breaker OPEN (nothing more is paid until an operator resets
it). Before an outflow is called unexplained the payout and sweep results are read to their end;
if they cannot be, it is called unexplained all the same (a false alarm costs a reset, a
missed theft costs the wallet). Ids are deterministic: a redelivered outflow emits the same
records again, and the breaker is opened once.

And the check of one `WalletBalance` (what all the wallets of a chain hold of an asset at a
block) against what the ledger implies they hold there (`streams.reconciliation.chain_records`):
a result on the same tier for every record; a difference is a BALANCE_MISMATCH discrepancy
and an alert once per finding (not on every block): the ledger above the chain is CRITICAL
(`wallet.holdings_deficit`, breaker OPEN), the chain above it MINOR (`wallet.holdings_surplus`:
value the ledger never credited, such as a deposit sent before the watcher's start block).
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from core.breaker import GLOBAL_SCOPE, asset_scope, reconciliation_change
from streams import metrics
from streams.app import Engine
from streams.ledger_view import LedgerView
from streams.reconciliation.chain_records import ChainRecords, expected_holdings
from streams.reconciliation.core import CRITICAL, MINOR, OK, SEVERITIES, Check
from streams.reconciliation.state import ReconciliationView
from streams.reconciliation.tiers import COMPONENT, Outputs, discrepancy
from topics import catalogue
from topics.breaker import breaker_record

log = logging.getLogger(__name__)

TIER = "WALLET_ONCHAIN"
CATCH_UP_S = 30.0  # how long the payout results may take to be read to their end


class WalletGuard:
    """Checks wallet outflows against the recorded payouts and the wallets' holdings
    against the ledger; opens the breaker on a theft or a ledger above the chain."""

    def __init__(self, engine: Engine, ledger: LedgerView, state: ReconciliationView) -> None:
        self.state = state
        self.ledger = ledger
        self.records = ChainRecords()
        self.view = engine.serve_view(
            [
                catalogue.PAYOUT_RESULTS,
                catalogue.SWEEP_RESULTS,
                catalogue.WALLET_OUTFLOWS,
                catalogue.CHAIN_OBSERVATIONS,
            ],
            self.records.fold,
            "wallet-guard-records",
        )
        self.reported: dict[tuple[str, str], tuple[str, Decimal]] = {}  # last finding

    async def caught_up(self, view) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, view.wait_caught_up, CATCH_UP_S)

    async def explained(self, tx_hash: str) -> bool:
        with self.view.lock:
            if self.records.recorded(tx_hash):
                return True
        if not await self.caught_up(self.view):
            log.error("payout results not read to their end; %s taken as unexplained", tx_hash)
        with self.view.lock:
            return self.records.recorded(tx_hash)

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

    async def check_holdings(self, balance: dict[str, Any], outputs: Outputs) -> None:
        """Invariant 1: what the wallets hold at the block equals what the ledger implies
        (`streams.reconciliation.chain_records`); the ledger above the chain is CRITICAL
        (breaker), the chain above it a surplus (MINOR: a deposit the ledger never
        credited). Not judged while the views cannot be read to their end."""
        asset = balance["asset"]
        if not await self.caught_up(self.ledger.view):
            log.error("ledger not read to its end; holdings %s not checked", balance["balance_id"])
            return
        with self.ledger.lock:  # read first: the records read after it hold every cause's event
            causes = dict(self.ledger.nets.chain_causes.get(asset, {}))
        if not await self.caught_up(self.view):
            log.error("chain records not read to their end; %s not checked", balance["balance_id"])
            return
        with self.view.lock:
            holdings = expected_holdings(balance, causes, self.records)
        difference = holdings.difference
        level = OK if difference == 0 else CRITICAL if difference < 0 else MINOR
        wallets = f"{balance['chain']}:wallets:{asset}"
        check = Check(
            f"holdings:{balance['balance_id']}",
            TIER,
            wallets,
            asset,
            holdings.expected,  # what the ledger implies the wallets hold at the block
            holdings.chain,  # what they hold
            level,
        )
        outputs.emit(catalogue.RECONCILIATION_RESULTS, wallets, check.result(outputs.now))
        metrics.reconciliation_checks.labels(TIER, level).inc()
        finding = (level, difference)
        key = (balance["chain"], asset)
        if level == OK or self.reported.get(key) == finding:
            self.reported[key] = finding
            return  # reported once per finding, not on every block
        self.reported[key] = finding
        where = f"{balance['chain']} block {balance['block_number']}"
        message = (
            f"{asset} wallets hold {holdings.chain} at {where}; the ledger implies "
            f"{holdings.expected} (operator assets {holdings.ledger}, in flight "
            f"{holdings.in_flight}, unconfirmed {balance['unconfirmed']}): "
            + ("the ledger is above the chain" if difference < 0 else "a surplus the ledger "
               "does not know (a deposit it never credited)")
        )  # fmt: skip
        if level == CRITICAL:  # name the thefts seen, whichever check the breaker hears first
            with self.view.lock:
                thefts = self.records.unexplained(asset, balance["block_number"])[:3]
            if thefts:
                message += "; outflows no payout recorded: " + ", ".join(
                    f"{o.tx_hash} (block {o.block})" for o in thefts
                )
        log.log(logging.CRITICAL if level == CRITICAL else logging.WARNING, "holdings: %s", message)
        outputs.emit(
            catalogue.DISCREPANCIES,
            wallets,
            discrepancy(
                f"{check.check_id}:BALANCE_MISMATCH",
                wallets,
                "BALANCE_MISMATCH",
                SEVERITIES[level],
                holdings.expected,
                holdings.chain,
                difference,
                f"chain/{balance['chain']}",
                balance["block_hash"],
                outputs.now,
            ),
        )
        outputs.alert(
            "wallet.holdings_deficit" if level == CRITICAL else "wallet.holdings_surplus",
            "CRITICAL" if level == CRITICAL else "HIGH",
            wallets,
            message,
            check_id=check.check_id,
            chain=balance["chain"],
            block_number=balance["block_number"],
            asset=asset,
            difference=difference,
        )
        if level == CRITICAL:
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
