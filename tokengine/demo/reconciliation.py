"""Demo steps on reconciliation: a drifting bank balance from Minor to Critical, the
circuit breaker holding a payout, an operator reset, and end of day (camt.053)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from eth_account import Account

from core.reasons import Reason
from tokengine.demo.harness import Demo, DemoFailure, console
from tokengine.demo.scenario import AED_ACCOUNT, camt053
from topics import catalogue
from topics.authentication import signing_producer
from topics.breaker import breaker_record, publish_breaker_state


def reconciliation(demo: Demo) -> None:
    demo.step("Reconciliation: a drifting bank balance, the breaker, an operator reset")
    ledger = Decimal(demo.intraday(Decimal("10000.00"))["ledger_balance"])
    seen = demo.breaker_commands_seen()
    levels = []
    for label, bank in (
        ("Minor", ledger * Decimal("1.0003")),
        ("Significant", ledger * Decimal("1.003")),
    ):
        answer = demo.intraday(bank.quantize(Decimal("0.01")))
        levels.append(answer["threshold_level"])
        console.print(
            f"   {label}: bank {answer['bank_balance']} vs ledger {answer['ledger_balance']} "
            f"({answer['deviation_pct']}%) -> {answer['threshold_level']}, "
            f"{answer['action_taken']}"
        )
    demo.wait(demo.suspended, "the suspension")
    # every ledger partition has the change before the next request (one per partition)
    demo.wait(lambda: demo.breaker_commands_seen() >= seen + 8, "the suspension in the ledger")
    # nothing pays xAED out (no bank payout connector): a withdrawal is refused at once
    body = {
        "request_id": "demo-w3",
        "account_id": "alice",
        "asset": "xAED",
        "amount": "50.00",
        "destination_address": "GB82WEST12345698765432",
    }
    status, refused = demo.api("POST", "/api/v1/withdrawals", body)
    demo.report.check(
        "Minor logged, Significant suspends xAED in every ledger partition",
        levels == ["MINOR", "SIGNIFICANT"]
        and (status, refused.get("error")) == (400, Reason.PAYOUTS_UNAVAILABLE),
        f"health lists asset:xAED; a xAED withdrawal is refused: {refused.get('error')}",
    )
    before = demo.breaker_commands_seen()
    critical = demo.intraday(Decimal("9000.00"))  # the ledger exceeds the bank
    demo.wait(lambda: demo.api("GET", "/api/v1/reconciliation/health")[0] == 503, "503")
    demo.wait(lambda: demo.breaker_commands_seen() >= before + 8, "the breaker in the ledger")
    held_to = Account.create().address
    demo.withdraw("demo-w4", "bob", "ETH", "0.01", held_to)
    held = demo.result("demo-w4", ("ACCEPTED",))
    demo.report.check(
        "Critical trips the breaker: health 503, a new ETH payout is held",
        critical["threshold_level"] == "CRITICAL"
        and held["reason"] == Reason.HELD_BY_CIRCUIT_BREAKER,
        f"{critical['action_taken']}; withdrawal {held['status']} ({held['reason']})",
    )
    demo.intraday(ledger)  # the bank's figure is corrected
    record = breaker_record("global", "CLOSED", "OK", "demo: bank confirmed", "operator:demo")
    publish_breaker_state(
        signing_producer(demo.settings, catalogue.OPERATOR),
        demo.settings.topic_prefix,
        demo.codec,
        record,
    )
    released = demo.result("demo-w4")
    health = demo.wait(
        lambda: (h := demo.api("GET", "/api/v1/reconciliation/health"))[0] == 200 and h[1],
        "health 200",
    )
    demo.report.check(
        "operator reset: the held payout completes, health is back",
        released["status"] == "COMPLETED" and demo.w3.eth.get_balance(held_to) == 10**16,
        f"health {health['status']}",
    )


def end_of_day(demo: Demo) -> None:
    demo.step("End of day: camt.053 statement, snapshot, matching, safeguarding report")
    ledger = Decimal(demo.intraday(Decimal("10000.00"))["ledger_balance"])
    today = datetime.now(UTC).date().isoformat()
    statement = camt053(
        "DEMO-053-1",
        AED_ACCOUNT,
        today,
        opening=Decimal(0),
        closing=ledger + Decimal("0.50"),
        entries=[
            ("BNK-AE-1", "TKE-ALICE", "CRDT", "10000.00"),
            ("BNK-INT-1", None, "CRDT", "0.50"),
        ],
    )
    status, answer = demo.api("POST", "/api/v1/reconciliation/eod", raw=statement)
    if status != 200:
        raise DemoFailure(f"end of day: {status} {answer}")
    snapshot = answer["snapshot"]
    kinds = sorted(d["type"] for d in answer["discrepancies"])
    console.print(
        f"   snapshot {snapshot['snapshot_id']}: closing {snapshot['closing_balance']}, "
        f"ledger {snapshot['ledger_balance']}, level {snapshot['level']}, "
        f"{snapshot['entries_matched']} matched, {snapshot['entries_unmatched']} unmatched"
    )
    for item in answer["discrepancies"]:
        console.print(f"     {item['type']} {item['reference']} ({item['source_system']})")
    console.print(f"   safeguarding report: {snapshot['report_path']} (+ .csv)")
    demo.report.check(
        "statement matched: the deposit matched, the bank's interest credit found unmatched",
        snapshot["entries_matched"] == 1
        and "MISSING_TXN" in kinds
        and Path(snapshot["report_path"]).exists(),
        f"discrepancies: {', '.join(kinds)}",
    )
