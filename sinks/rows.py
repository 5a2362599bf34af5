"""What each topic's event becomes in Postgres: idempotent statements and their parameters.

Owns the mapping from decoded events to rows. Every statement is an upsert keyed by the
event's own id (or a guarded last-writer-wins on a version or time), so applying an event
twice, or replaying a topic from offset 0, leaves the tables as they were. A payout's row
is written from two topics (its command, its result), read in no fixed order between them:
its two statements give the same row in either order.
`STATEMENTS` is in dependency order (a transaction before its postings).
"""

from __future__ import annotations

import json
from typing import Any

from topics import catalogue
from topics.jsonable import jsonable

Row = tuple[str, tuple]  # (statement name, parameters)

STATEMENTS: dict[str, str] = {
    "transaction": """
        INSERT INTO ledger_transactions (transaction_id, account_id, kind, cause_id, asset,
            sequence, previous_hash, hash, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (transaction_id) DO NOTHING""",
    "posting": """
        INSERT INTO ledger_postings (transaction_id, posting_index, ledger_account, direction,
            amount)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (transaction_id, posting_index) DO NOTHING""",
    "balance": """
        INSERT INTO accounts (account_id, asset, balance, reserved, available, version,
            cause_id, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (account_id, asset) DO UPDATE SET balance = EXCLUDED.balance,
            reserved = EXCLUDED.reserved, available = EXCLUDED.available,
            version = EXCLUDED.version, cause_id = EXCLUDED.cause_id,
            updated_at = EXCLUDED.updated_at
        WHERE accounts.version <= EXCLUDED.version""",
    "deposit": """
        INSERT INTO deposits (deposit_id, account_id, chain, asset, tx_hash, output_index,
            amount, status, confirmations, confirmations_required, block_number, block_hash,
            observed_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (deposit_id) DO UPDATE SET status = EXCLUDED.status,
            amount = EXCLUDED.amount, confirmations = EXCLUDED.confirmations,
            confirmations_required = EXCLUDED.confirmations_required,
            block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash,
            observed_at = EXCLUDED.observed_at""",
    "payout_command": """
        INSERT INTO payouts (payout_id, account_id, request_id, chain, asset, amount, fee,
            destination_address, state, created_at, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'PREPARED', %s, %s)
        ON CONFLICT (payout_id) DO UPDATE SET request_id = EXCLUDED.request_id,
            chain = EXCLUDED.chain, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
            fee = EXCLUDED.fee, destination_address = EXCLUDED.destination_address,
            created_at = EXCLUDED.created_at,
            updated_at = GREATEST(EXCLUDED.updated_at, payouts.updated_at)""",
    "payout_result": """
        INSERT INTO payouts (payout_id, account_id, state, tx_hash, network_fee, reason,
            updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (payout_id) DO UPDATE SET
            state = CASE WHEN payouts.state IN ('CONFIRMED', 'FAILED') THEN payouts.state
                         ELSE EXCLUDED.state END,
            tx_hash = COALESCE(EXCLUDED.tx_hash, payouts.tx_hash),
            network_fee = COALESCE(EXCLUDED.network_fee, payouts.network_fee),
            reason = COALESCE(EXCLUDED.reason, payouts.reason),
            updated_at = GREATEST(EXCLUDED.updated_at, payouts.updated_at)""",
    "request_result": """
        INSERT INTO request_results (request_id, account_id, request_kind, status, reason,
            asset, amount, fee, version, decided_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (request_id) DO UPDATE SET status = EXCLUDED.status,
            reason = EXCLUDED.reason, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
            fee = EXCLUDED.fee, version = EXCLUDED.version, decided_at = EXCLUDED.decided_at
        WHERE request_results.version < EXCLUDED.version""",
    "reconciliation_result": """
        INSERT INTO reconciliation_results (check_id, tier, account_id, asset, ledger_balance,
            bank_balance, difference, deviation_pct, level, action, checked_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (check_id) DO UPDATE SET ledger_balance = EXCLUDED.ledger_balance,
            bank_balance = EXCLUDED.bank_balance, difference = EXCLUDED.difference,
            deviation_pct = EXCLUDED.deviation_pct, level = EXCLUDED.level,
            action = EXCLUDED.action, checked_at = EXCLUDED.checked_at""",
    "emi_account": """
        INSERT INTO emi_accounts (account_id, asset, currency, ledger_balance, bank_balance,
            reserved_balance, available_balance, reconciliation_status, reconciliation_source,
            reconciliation_difference, last_check_id, last_reconciled_at)
        VALUES (%s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (account_id) DO UPDATE SET asset = EXCLUDED.asset,
            currency = EXCLUDED.currency,
            ledger_balance = EXCLUDED.ledger_balance, bank_balance = EXCLUDED.bank_balance,
            reconciliation_status = EXCLUDED.reconciliation_status,
            reconciliation_source = EXCLUDED.reconciliation_source,
            reconciliation_difference = EXCLUDED.reconciliation_difference,
            last_check_id = EXCLUDED.last_check_id,
            last_reconciled_at = EXCLUDED.last_reconciled_at
        WHERE emi_accounts.last_reconciled_at <= EXCLUDED.last_reconciled_at""",
    "discrepancy": """
        INSERT INTO reconciliation_discrepancies (discrepancy_id, account_id, type, severity,
            expected, actual, difference, source_system, reference, status, detected_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (discrepancy_id) DO UPDATE SET status = EXCLUDED.status,
            severity = EXCLUDED.severity""",
    "snapshot": """
        INSERT INTO emi_account_snapshots (account_id, snapshot_date, asset,
            statement_message_id, opening_balance, closing_balance, ledger_balance, difference,
            level, entries_matched, entries_unmatched, replaces, report_path, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (account_id, snapshot_date) DO UPDATE SET
            statement_message_id = EXCLUDED.statement_message_id,
            opening_balance = EXCLUDED.opening_balance,
            closing_balance = EXCLUDED.closing_balance,
            ledger_balance = EXCLUDED.ledger_balance, difference = EXCLUDED.difference,
            level = EXCLUDED.level, entries_matched = EXCLUDED.entries_matched,
            entries_unmatched = EXCLUDED.entries_unmatched, replaces = EXCLUDED.replaces,
            report_path = EXCLUDED.report_path, created_at = EXCLUDED.created_at""",
    "breaker": """
        INSERT INTO breaker_history (scope, state, level, reason, actor, changed_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT DO NOTHING""",
    "audit": """
        INSERT INTO audit_log (event_id, topic, account_id, operation, changes, occurred_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (event_id) DO NOTHING""",
}

# Derived columns, recomputed from the tables after a batch that touched them.
REFRESH_EMI_ACCOUNTS = """
    UPDATE emi_accounts e SET
        reserved_balance = r.reserved,
        available_balance = e.ledger_balance - r.reserved,
        metadata = jsonb_build_object('circuit_breaker_active', r.halted)
    FROM (
        SELECT e2.account_id,
            COALESCE((SELECT sum(a.reserved) FROM accounts a WHERE a.asset = e2.asset), 0)
                AS reserved,
            EXISTS (
                SELECT 1 FROM (
                    SELECT DISTINCT ON (scope) scope, state FROM breaker_history
                    WHERE scope IN ('global', 'asset:' || e2.asset)
                    ORDER BY scope, changed_at DESC
                ) latest WHERE latest.state = 'OPEN'
            ) AS halted
        FROM emi_accounts e2
    ) r
    WHERE e.account_id = r.account_id"""

TOPICS = (
    catalogue.LEDGER_ENTRIES,
    catalogue.BALANCE_UPDATES,
    catalogue.CHAIN_OBSERVATIONS,
    catalogue.PAYOUT_COMMANDS,
    catalogue.PAYOUT_RESULTS,
    catalogue.REQUEST_RESULTS,
    catalogue.RECONCILIATION_RESULTS,
    catalogue.DISCREPANCIES,
    catalogue.EOD_SNAPSHOTS,
    catalogue.BREAKER_STATE,
)
REFRESHING_TOPICS = {
    catalogue.BALANCE_UPDATES,
    catalogue.RECONCILIATION_RESULTS,
    catalogue.BREAKER_STATE,
}


def audit(event_id: str, topic: str, account: str | None, operation: str, changes, at) -> Row:
    return ("audit", (event_id, topic, account, operation, json.dumps(jsonable(changes)), at))


def rows(topic: str, v: dict[str, Any], currencies: dict[str, str] | None = None) -> list[Row]:
    """The statements one event applies (`currencies`: asset -> bank currency)."""
    if topic == catalogue.LEDGER_ENTRIES:
        found: list[Row] = [
            (
                "transaction",
                (
                    v["transaction_id"],
                    v["account_id"],
                    v["kind"],
                    v["cause_id"],
                    v["asset"],
                    v["sequence"],
                    v["previous_hash"],
                    v["hash"],
                    v["created_at"],
                ),
            )
        ]
        for index, p in enumerate(v["postings"]):
            found.append(
                (
                    "posting",
                    (v["transaction_id"], index, p["ledger_account"], p["direction"], p["amount"]),
                )
            )
        changes = {"asset": v["asset"], "postings": v["postings"], "hash": v["hash"]}
        found.append(
            audit(
                f"tx:{v['transaction_id']}",
                topic,
                v["account_id"],
                f"ledger.{v['kind']}",
                changes,
                v["created_at"],
            )
        )
        return found
    if topic == catalogue.BALANCE_UPDATES:
        return [
            (
                "balance",
                (
                    v["account_id"],
                    v["asset"],
                    v["balance"],
                    v["reserved"],
                    v["available"],
                    v["version"],
                    v["cause_id"],
                    v["updated_at"],
                ),
            )
        ]
    if topic == catalogue.CHAIN_OBSERVATIONS:
        return [
            (
                "deposit",
                (
                    v["deposit_id"],
                    v["account_id"],
                    v["chain"],
                    v["asset"],
                    v["tx_hash"],
                    v["output_index"],
                    v["amount"],
                    v["status"],
                    v["confirmations"],
                    v["confirmations_required"],
                    v["block_number"],
                    v["block_hash"],
                    v["observed_at"],
                ),
            )
        ]
    if topic == catalogue.PAYOUT_COMMANDS:
        return [
            (
                "payout_command",
                (
                    v["payout_id"],
                    v["account_id"],
                    v["request_id"],
                    v["chain"],
                    v["asset"],
                    v["amount"],
                    v["fee"],
                    v["destination_address"],
                    v["created_at"],
                    v["created_at"],
                ),
            ),
            audit(
                f"payout:{v['payout_id']}:PREPARED",
                topic,
                v["account_id"],
                "payout.prepared",
                v,
                v["created_at"],
            ),
        ]
    if topic == catalogue.PAYOUT_RESULTS:
        return [
            (
                "payout_result",
                (
                    v["payout_id"],
                    v["account_id"],
                    v["status"],
                    v["tx_hash"],
                    v["network_fee"],
                    v["reason"],
                    v["reported_at"],
                ),
            ),
            audit(
                f"payout:{v['payout_id']}:{v['status']}",
                topic,
                v["account_id"],
                f"payout.{v['status'].lower()}",
                v,
                v["reported_at"],
            ),
        ]
    if topic == catalogue.REQUEST_RESULTS:
        return [
            (
                "request_result",
                (
                    v["request_id"],
                    v["account_id"],
                    v["request_kind"],
                    v["status"],
                    v["reason"],
                    v["asset"],
                    v["amount"],
                    v["fee"],
                    v["version"],
                    v["decided_at"],
                ),
            ),
            audit(
                f"request:{v['request_id']}:{v['version']}:{v['status']}",
                topic,
                v["account_id"],
                f"request.{v['status'].lower()}",
                v,
                v["decided_at"],
            ),
        ]
    if topic == catalogue.RECONCILIATION_RESULTS:
        return [
            (
                "reconciliation_result",
                (
                    v["check_id"],
                    v["tier"],
                    v["account_id"],
                    v["asset"],
                    v["ledger_balance"],
                    v["bank_balance"],
                    v["difference"],
                    v["deviation_pct"],
                    v["level"],
                    v["action"],
                    v["checked_at"],
                ),
            ),
            (
                "emi_account",
                (
                    v["account_id"],
                    v["asset"],
                    (currencies or {}).get(v["asset"], ""),
                    v["ledger_balance"],
                    v["bank_balance"],
                    v["ledger_balance"],
                    v["level"],
                    v["tier"],
                    v["difference"],
                    v["check_id"],
                    v["checked_at"],
                ),
            ),
        ]
    if topic == catalogue.DISCREPANCIES:
        return [
            (
                "discrepancy",
                (
                    v["discrepancy_id"],
                    v["account_id"],
                    v["type"],
                    v["severity"],
                    v["expected"],
                    v["actual"],
                    v["difference"],
                    v["source_system"],
                    v["reference"],
                    v["status"],
                    v["detected_at"],
                ),
            ),
            audit(
                f"discrepancy:{v['discrepancy_id']}:{v['status']}",
                topic,
                v["account_id"],
                f"discrepancy.{v['status'].lower()}",
                v,
                v["detected_at"],
            ),
        ]
    if topic == catalogue.EOD_SNAPSHOTS:
        return [
            (
                "snapshot",
                (
                    v["account_id"],
                    v["snapshot_date"],
                    v["asset"],
                    v["statement_message_id"],
                    v["opening_balance"],
                    v["closing_balance"],
                    v["ledger_balance"],
                    v["difference"],
                    v["level"],
                    v["entries_matched"],
                    v["entries_unmatched"],
                    v["replaces"],
                    v["report_path"],
                    v["created_at"],
                ),
            ),
            audit(
                f"snapshot:{v['snapshot_id']}:{v['statement_message_id']}",
                topic,
                v["account_id"],
                "eod.snapshot",
                v,
                v["created_at"],
            ),
        ]
    if topic == catalogue.BREAKER_STATE:
        stamp = v["changed_at"].isoformat()
        return [
            (
                "breaker",
                (v["scope"], v["state"], v["level"], v["reason"], v["actor"], v["changed_at"]),
            ),
            audit(
                f"breaker:{v['scope']}:{stamp}:{v['state']}:{v['actor']}",
                topic,
                None,
                f"breaker.{v['state'].lower()}",
                v,
                v["changed_at"],
            ),
        ]
    raise KeyError(f"the sink does not read {topic}")
