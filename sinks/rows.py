"""What each topic's event becomes in Postgres: idempotent statements and their parameters.

Owns the mapping from decoded events to rows. Every statement is an upsert keyed by the
event's own id (or a guarded last-writer-wins on a version or time), so applying an event
twice, or replaying a topic from offset 0, leaves the tables as they were. A payout's row
is written from two topics (its command, its result), read in no fixed order between them:
its two statements give the same row in either order.

Parameters are named (`%(field)s`) after the event's own fields, so a row is the event
itself plus the few values it does not carry; `row()` checks that every parameter a
statement names is there before anything reaches Postgres. `STATEMENTS` is in dependency
order (a transaction before its postings); `ROWS` is one function per topic read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from topics import catalogue
from topics.jsonable import jsonable

Row = tuple[str, dict[str, Any]]  # (statement name, named parameters)

STATEMENTS: dict[str, str] = {
    "transaction": """
        INSERT INTO ledger_transactions (transaction_id, account_id, kind, cause_id, asset,
            sequence, previous_hash, hash, created_at)
        VALUES (%(transaction_id)s, %(account_id)s, %(kind)s, %(cause_id)s, %(asset)s,
            %(sequence)s, %(previous_hash)s, %(hash)s, %(created_at)s)
        ON CONFLICT (transaction_id) DO NOTHING""",
    "posting": """
        INSERT INTO ledger_postings (transaction_id, posting_index, ledger_account, direction,
            amount)
        VALUES (%(transaction_id)s, %(posting_index)s, %(ledger_account)s, %(direction)s,
            %(amount)s)
        ON CONFLICT (transaction_id, posting_index) DO NOTHING""",
    "balance": """
        INSERT INTO accounts (account_id, asset, balance, reserved, available, version,
            cause_id, updated_at)
        VALUES (%(account_id)s, %(asset)s, %(balance)s, %(reserved)s, %(available)s,
            %(version)s, %(cause_id)s, %(updated_at)s)
        ON CONFLICT (account_id, asset) DO UPDATE SET balance = EXCLUDED.balance,
            reserved = EXCLUDED.reserved, available = EXCLUDED.available,
            version = EXCLUDED.version, cause_id = EXCLUDED.cause_id,
            updated_at = EXCLUDED.updated_at
        WHERE accounts.version <= EXCLUDED.version""",
    "deposit": """
        INSERT INTO deposits (deposit_id, account_id, chain, asset, tx_hash, output_index,
            amount, status, confirmations, confirmations_required, block_number, block_hash,
            observed_at)
        VALUES (%(deposit_id)s, %(account_id)s, %(chain)s, %(asset)s, %(tx_hash)s,
            %(output_index)s, %(amount)s, %(status)s, %(confirmations)s,
            %(confirmations_required)s, %(block_number)s, %(block_hash)s, %(observed_at)s)
        ON CONFLICT (deposit_id) DO UPDATE SET status = EXCLUDED.status,
            amount = EXCLUDED.amount, confirmations = EXCLUDED.confirmations,
            confirmations_required = EXCLUDED.confirmations_required,
            block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash,
            observed_at = EXCLUDED.observed_at""",
    "payout_command": """
        INSERT INTO payouts (payout_id, account_id, request_id, chain, asset, amount, fee,
            destination_address, state, created_at, updated_at)
        VALUES (%(payout_id)s, %(account_id)s, %(request_id)s, %(chain)s, %(asset)s,
            %(amount)s, %(fee)s, %(destination_address)s, 'PREPARED', %(created_at)s,
            %(created_at)s)
        ON CONFLICT (payout_id) DO UPDATE SET request_id = EXCLUDED.request_id,
            chain = EXCLUDED.chain, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
            fee = EXCLUDED.fee, destination_address = EXCLUDED.destination_address,
            created_at = EXCLUDED.created_at,
            updated_at = GREATEST(EXCLUDED.updated_at, payouts.updated_at)""",
    "payout_result": """
        INSERT INTO payouts (payout_id, account_id, state, tx_hash, network_fee,
            network_fee_asset, reason, updated_at)
        VALUES (%(payout_id)s, %(account_id)s, %(status)s, %(tx_hash)s, %(network_fee)s,
            %(network_fee_asset)s, %(reason)s, %(reported_at)s)
        ON CONFLICT (payout_id) DO UPDATE SET
            state = CASE WHEN payouts.state IN ('CONFIRMED', 'FAILED') THEN payouts.state
                         ELSE EXCLUDED.state END,
            tx_hash = COALESCE(EXCLUDED.tx_hash, payouts.tx_hash),
            network_fee = COALESCE(EXCLUDED.network_fee, payouts.network_fee),
            network_fee_asset = COALESCE(EXCLUDED.network_fee_asset, payouts.network_fee_asset),
            reason = COALESCE(EXCLUDED.reason, payouts.reason),
            updated_at = GREATEST(EXCLUDED.updated_at, payouts.updated_at)""",
    "sweep_result": """
        INSERT INTO sweeps (sweep_id, chain, asset, from_address, to_address, to_role, amount,
            state, tx_hash, network_fee, network_fee_asset, reason, updated_at)
        VALUES (%(sweep_id)s, %(chain)s, %(asset)s, %(from_address)s, %(to_address)s,
            %(to_role)s, %(amount)s, %(status)s, %(tx_hash)s, %(network_fee)s,
            %(network_fee_asset)s, %(reason)s, %(reported_at)s)
        ON CONFLICT (sweep_id) DO UPDATE SET
            state = CASE WHEN sweeps.state IN ('CONFIRMED', 'FAILED') THEN sweeps.state
                         ELSE EXCLUDED.state END,
            network_fee = COALESCE(sweeps.network_fee, EXCLUDED.network_fee),
            reason = COALESCE(sweeps.reason, EXCLUDED.reason),
            updated_at = GREATEST(EXCLUDED.updated_at, sweeps.updated_at)""",
    "request_result": """
        INSERT INTO request_results (request_id, account_id, request_kind, status, reason,
            asset, amount, fee, version, decided_at)
        VALUES (%(request_id)s, %(account_id)s, %(request_kind)s, %(status)s, %(reason)s,
            %(asset)s, %(amount)s, %(fee)s, %(version)s, %(decided_at)s)
        ON CONFLICT (request_id) DO UPDATE SET status = EXCLUDED.status,
            reason = EXCLUDED.reason, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
            fee = EXCLUDED.fee, version = EXCLUDED.version, decided_at = EXCLUDED.decided_at
        WHERE request_results.version < EXCLUDED.version""",
    "reconciliation_result": """
        INSERT INTO reconciliation_results (check_id, tier, account_id, asset, ledger_balance,
            bank_balance, difference, deviation_pct, level, action, checked_at)
        VALUES (%(check_id)s, %(tier)s, %(account_id)s, %(asset)s, %(ledger_balance)s,
            %(bank_balance)s, %(difference)s, %(deviation_pct)s, %(level)s, %(action)s,
            %(checked_at)s)
        ON CONFLICT (check_id) DO UPDATE SET ledger_balance = EXCLUDED.ledger_balance,
            bank_balance = EXCLUDED.bank_balance, difference = EXCLUDED.difference,
            deviation_pct = EXCLUDED.deviation_pct, level = EXCLUDED.level,
            action = EXCLUDED.action, checked_at = EXCLUDED.checked_at""",
    "emi_account": """
        INSERT INTO emi_accounts (account_id, asset, currency, ledger_balance, bank_balance,
            reserved_balance, available_balance, reconciliation_status, reconciliation_source,
            reconciliation_difference, last_check_id, last_reconciled_at)
        VALUES (%(account_id)s, %(asset)s, %(currency)s, %(ledger_balance)s,
            %(bank_balance)s, 0, %(ledger_balance)s, %(level)s, %(tier)s, %(difference)s,
            %(check_id)s, %(checked_at)s)
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
        VALUES (%(discrepancy_id)s, %(account_id)s, %(type)s, %(severity)s, %(expected)s,
            %(actual)s, %(difference)s, %(source_system)s, %(reference)s, %(status)s,
            %(detected_at)s)
        ON CONFLICT (discrepancy_id) DO UPDATE SET status = EXCLUDED.status,
            severity = EXCLUDED.severity""",
    "snapshot": """
        INSERT INTO emi_account_snapshots (account_id, snapshot_date, asset,
            statement_message_id, opening_balance, closing_balance, ledger_balance, difference,
            level, entries_matched, entries_unmatched, replaces, report_path, created_at)
        VALUES (%(account_id)s, %(snapshot_date)s, %(asset)s, %(statement_message_id)s,
            %(opening_balance)s, %(closing_balance)s, %(ledger_balance)s, %(difference)s,
            %(level)s, %(entries_matched)s, %(entries_unmatched)s, %(replaces)s,
            %(report_path)s, %(created_at)s)
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
        VALUES (%(scope)s, %(state)s, %(level)s, %(reason)s, %(actor)s, %(changed_at)s)
        ON CONFLICT DO NOTHING""",
    "audit": """
        INSERT INTO audit_log (event_id, topic, account_id, operation, changes, occurred_at,
            actor)
        VALUES (%(event_id)s, %(topic)s, %(account_id)s, %(operation)s, %(changes)s,
            %(occurred_at)s, %(actor)s)
        ON CONFLICT (event_id) DO NOTHING""",
}

# each statement's parameter names, in the order the statement first names them
PARAMETERS: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql))) for name, sql in STATEMENTS.items()
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


def row(statement: str, event: Mapping[str, Any], **extra: Any) -> Row:
    """`statement`'s parameters: each from `extra`, else the event's field of that name.

    A field the event lacks raises `KeyError` here, before anything reaches Postgres."""
    return statement, {
        name: extra[name] if name in extra else event[name] for name in PARAMETERS[statement]
    }


def audit(event_id: str, topic: str, account_id: str | None, operation: str, changes, at) -> Row:
    """The audit row of one change (its actor: the operator's, when the change says one)."""
    actor = changes.get("actor") if isinstance(changes, Mapping) else None
    return row(
        "audit",
        {},
        event_id=event_id,
        topic=topic,
        account_id=account_id,
        operation=operation,
        changes=json.dumps(jsonable(changes)),
        occurred_at=at,
        actor=actor,
    )


Currencies = Mapping[str, str]  # asset -> bank currency


def ledger_entry(v: dict[str, Any], _: Currencies) -> list[Row]:
    postings = [
        row("posting", posting, transaction_id=v["transaction_id"], posting_index=index)
        for index, posting in enumerate(v["postings"])
    ]
    changes = {"asset": v["asset"], "postings": v["postings"], "hash": v["hash"]}
    return [
        row("transaction", v),
        *postings,
        audit(
            f"tx:{v['transaction_id']}",
            catalogue.LEDGER_ENTRIES,
            v["account_id"],
            f"ledger.{v['kind']}",
            changes,
            v["created_at"],
        ),
    ]


def balance_update(v: dict[str, Any], _: Currencies) -> list[Row]:
    return [row("balance", v)]


def chain_observation(v: dict[str, Any], _: Currencies) -> list[Row]:
    return [row("deposit", v)]


def audited(
    statement: str, v: dict[str, Any], topic: str, event_id: str, operation: str, at
) -> list[Row]:
    """`statement`'s row, and the audit row recording the event as the change."""
    return [row(statement, v), audit(event_id, topic, v.get("account_id"), operation, v, at)]


def payout_command(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"payout:{v['payout_id']}:PREPARED"
    return audited(
        "payout_command", v, catalogue.PAYOUT_COMMANDS, event_id, "payout.prepared", v["created_at"]
    )


def payout_result(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"payout:{v['payout_id']}:{v['status']}"
    operation = f"payout.{v['status'].lower()}"
    v = {"network_fee_asset": None, **v}  # results written before the field existed
    return audited(
        "payout_result", v, catalogue.PAYOUT_RESULTS, event_id, operation, v["reported_at"]
    )


def sweep_result(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"sweep:{v['sweep_id']}:{v['status']}"
    operation = f"sweep.{v['status'].lower()}"
    at = v["reported_at"]
    return audited("sweep_result", v, catalogue.SWEEP_RESULTS, event_id, operation, at)


def request_result(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"request:{v['request_id']}:{v['version']}:{v['status']}"
    operation = f"request.{v['status'].lower()}"
    return audited(
        "request_result", v, catalogue.REQUEST_RESULTS, event_id, operation, v["decided_at"]
    )


def reconciliation_result(v: dict[str, Any], currencies: Currencies) -> list[Row]:
    if v["tier"] == "WALLET_ONCHAIN":  # a wallet outflow's check: no bank account's figure
        return [row("reconciliation_result", v)]
    return [
        row("reconciliation_result", v),
        row("emi_account", v, currency=currencies.get(v["asset"], "")),
    ]


def discrepancy(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"discrepancy:{v['discrepancy_id']}:{v['status']}"
    operation = f"discrepancy.{v['status'].lower()}"
    return audited("discrepancy", v, catalogue.DISCREPANCIES, event_id, operation, v["detected_at"])


def eod_snapshot(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"snapshot:{v['snapshot_id']}:{v['statement_message_id']}"
    return audited(
        "snapshot", v, catalogue.EOD_SNAPSHOTS, event_id, "eod.snapshot", v["created_at"]
    )


def breaker_state(v: dict[str, Any], _: Currencies) -> list[Row]:
    stamp = v["changed_at"].isoformat()
    event_id = f"breaker:{v['scope']}:{stamp}:{v['state']}:{v['actor']}"
    operation = f"breaker.{v['state'].lower()}"
    return audited("breaker", v, catalogue.BREAKER_STATE, event_id, operation, v["changed_at"])


def address_binding(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"binding:{v['chain']}:{v['address']}:{v['account_id']}"
    at = v["bound_at"]
    if v.get("expires_at") is not None:  # a pool binding: one address is bound again later
        event_id += f":{at.isoformat()}"
    return [audit(event_id, catalogue.ADDRESS_BINDINGS, v["account_id"], "address.bound", v, at)]


def deposit_assignment(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"assignment:{v['deposit_id']}:{v['assigned_at'].isoformat()}"
    topic, at = catalogue.DEPOSIT_ASSIGNMENTS, v["assigned_at"]
    return [audit(event_id, topic, v["account_id"], "deposit.assigned", v, at)]


def asset_price(v: dict[str, Any], _: Currencies) -> list[Row]:
    event_id = f"price:{v['asset']}:{v['as_of'].isoformat()}"
    return [audit(event_id, catalogue.PRICES, None, "price.set", v, v["as_of"])]


def api_key(v: dict[str, Any], _: Currencies) -> list[Row]:
    """Keys are audited without their hash (nothing of the secret leaves the key topic)."""
    event_id = f"key:{v['key_id']}:{v['status']}"
    changes = {name: value for name, value in v.items() if name != "secret_sha256"}
    operation = f"key.{v['status'].lower()}"
    return [audit(event_id, catalogue.API_KEYS, None, operation, changes, v["changed_at"])]


# the topics the sink reads, and what one event of each becomes
ROWS: dict[str, Callable[[dict[str, Any], Currencies], list[Row]]] = {
    catalogue.LEDGER_ENTRIES: ledger_entry,
    catalogue.BALANCE_UPDATES: balance_update,
    catalogue.CHAIN_OBSERVATIONS: chain_observation,
    catalogue.PAYOUT_COMMANDS: payout_command,
    catalogue.PAYOUT_RESULTS: payout_result,
    catalogue.SWEEP_RESULTS: sweep_result,
    catalogue.REQUEST_RESULTS: request_result,
    catalogue.RECONCILIATION_RESULTS: reconciliation_result,
    catalogue.DISCREPANCIES: discrepancy,
    catalogue.EOD_SNAPSHOTS: eod_snapshot,
    catalogue.BREAKER_STATE: breaker_state,
    catalogue.ADDRESS_BINDINGS: address_binding,
    catalogue.DEPOSIT_ASSIGNMENTS: deposit_assignment,
    catalogue.PRICES: asset_price,
    catalogue.API_KEYS: api_key,
}
TOPICS = tuple(ROWS)
# topics whose rows change what REFRESH_EMI_ACCOUNTS derives
REFRESHING_TOPICS = {
    catalogue.BALANCE_UPDATES,
    catalogue.RECONCILIATION_RESULTS,
    catalogue.BREAKER_STATE,
}


def rows(topic: str, v: dict[str, Any], currencies: Currencies | None = None) -> list[Row]:
    """The statements one event applies (`currencies`: asset -> bank currency)."""
    if topic not in ROWS:
        raise KeyError(f"the sink does not read {topic}")
    return ROWS[topic](v, currencies or {})
