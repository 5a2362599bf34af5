"""CLI against a running worker: balances, and the breaker holding payouts until reset."""

from __future__ import annotations

import json

from tests.helpers import produce, read_topic, values
from tests.http import call
from tests.ledger_inputs import ETH_ADDRESS, observation
from tests.streams.test_ledger_worker import balances, final, wait_for
from tests.test_cli import cli
from topics import catalogue


def test_balances_and_breaker_hold_and_release(settings, start_worker):
    worker = start_worker()
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "erin", observation("erin", "50", "0xe1"))
    wait_for(lambda: balances(worker, "erin").get("WEI"), what="deposit")
    shown = cli(settings, "balances", "--account", "erin", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == [
        {"account_id": "erin", "asset": "WEI", "balance": "50", "reserved": "0", "available": "50"}
    ]

    tripped = cli(settings, "breaker", "trip", "--reason", "test: bank mismatch")
    assert tripped.returncode == 0, tripped.stderr
    status = cli(settings, "breaker", "status")
    assert "global: OPEN level=CRITICAL by owner:" in status.stdout  # the OS's user, not $LOGNAME
    # the trip must reach the ledger before the request: wait for its control command
    read_topic(
        settings,
        catalogue.LEDGER_COMMANDS,
        until=lambda rs: sum(r["value"]["kind"] == "BREAKER_CHANGE" for r in rs) >= 8,
    )
    call(
        "POST",
        f"{worker.api_url}/api/v1/withdrawals",
        {
            "request_id": "held-1",
            "account_id": "erin",
            "asset": "WEI",
            "amount": "10",
            "destination_address": ETH_ADDRESS,
        },
    )
    accepted = final(worker, "held-1", ("ACCEPTED",))
    assert accepted["reason"] == "held_by_circuit_breaker"
    assert balances(worker, "erin")["WEI"]["reserved"] == "12"
    assert read_topic(settings, catalogue.PAYOUT_COMMANDS, timeout_s=3) == []

    reset = cli(settings, "breaker", "reset", "--reason", "reconciled")
    assert reset.returncode == 0, reset.stderr
    [command] = values(read_topic(settings, catalogue.PAYOUT_COMMANDS, until_count=1))
    assert command["payout_id"] == "po:erin:held-1"
    assert "global: CLOSED" in cli(settings, "breaker", "status").stdout
    bad = cli(settings, "breaker", "trip", "--scope", "everything", "--reason", "x")
    assert bad.returncode == 2 and "--scope" in bad.stderr
