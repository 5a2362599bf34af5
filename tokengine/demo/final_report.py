"""The demo's last step: balances, invariants, the wallets against the chain, hash chains,
and Postgres against the topics."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from sinks.verify import verify_chains, verify_postgres
from streams.ledger_watch import violations
from tokengine.demo.harness import Demo, console
from topics import catalogue
from topics.tail import read_to_end


def final_report(demo: Demo) -> None:
    demo.step("Final report")
    entries = read_to_end(demo.settings, catalogue.LEDGER_ENTRIES)
    updates = read_to_end(demo.settings, catalogue.BALANCE_UPDATES)
    newest: dict[tuple[str, str], dict] = {}
    for update in updates:
        key = (update["account_id"], update["asset"])
        if key not in newest or update["version"] >= newest[key]["version"]:
            newest[key] = update
    for (account, asset), update in sorted(newest.items()):
        if not account.startswith("user"):
            console.print(f"   {account:8} {asset:5} {update['balance']:>24f}")
    console.print(f"   (+ {sum(1 for a, _ in newest if a.startswith('user'))} load accounts)")
    nets: dict[str, Decimal] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry["transaction_id"] in seen:
            continue
        seen.add(entry["transaction_id"])
        for posting in entry["postings"]:
            sign = 1 if posting["direction"] == "DEBIT" else -1
            account = posting["ledger_account"]
            nets[account] = nets.get(account, Decimal(0)) + sign * posting["amount"]
    found = violations(nets, {})
    demo.report.check(
        "invariants hold (balanced, none negative, assets = liabilities)",
        not found,
        "; ".join(found[:2]),
    )
    wallet_reconciliation(demo)
    url = demo.settings.database_url

    def rows(table: str) -> int:
        with psycopg.connect(url) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    demo.wait(lambda: rows("ledger_transactions") == len(seen), "the sink", 60)
    demo.wait(lambda: rows("accounts") == len(newest), "the sink's balances", 60)
    from_topic = verify_chains("topic", entries)
    from_postgres = verify_postgres(url)
    demo.report.check("verify-ledger (topic)", from_topic.ok, from_topic.summary())
    demo.report.check("verify-ledger (postgres)", from_postgres.ok, from_postgres.summary())
    demo.report.check(
        "Postgres rows equal the topics",
        rows("ledger_transactions") == len(seen) and rows("accounts") == len(newest),
        f"{len(seen)} transactions, {len(newest)} balances",
    )
    console.print(
        "\n   where to look next: `tokengine tail <topic>` (topics: "
        f"{demo.settings.topic_prefix}*), {demo.api_url}/metrics, "
        f"{demo.api_url}/api/v1/reconciliation/summary, Postgres tables ledger_transactions, "
        "accounts, emi_accounts, audit_log"
    )


def wallet_reconciliation(demo: Demo) -> None:
    """Invariant 1 at a block mined now: every Ethereum asset's wallets hold what the
    ledger says (the reconciliation results of that block or a later one)."""
    demo.mine(1)
    height = demo.w3.eth.block_number
    wanted = {f"ethereum:wallets:{code}" for code in ("ETH", "TOK")}

    def results() -> dict[str, dict]:
        found = {}
        for result in read_to_end(demo.settings, catalogue.RECONCILIATION_RESULTS):
            check_id = result["check_id"]
            if check_id.startswith("holdings:") and int(check_id.rsplit(":", 1)[1]) >= height:
                found[result["account_id"]] = result
        return found if wanted <= set(found) else {}

    latest = demo.wait(results, "the wallet reconciliation", 60)
    for account, result in sorted(latest.items()):
        console.print(
            f"   {account:22} chain {result['bank_balance']:>28f}  ledger "
            f"{result['ledger_balance']:>28f}  {result['level']}"
        )
    demo.report.check(
        "the wallets hold what the ledger says (invariant 1)",
        all(r["level"] == "OK" for r in latest.values()),
        ", ".join(f"{a} {r['difference'].normalize():f}" for a, r in sorted(latest.items())),
    )
