"""Reconciliation through a real worker: every level's action, duplicates, end of day."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from standins.simulated_bank import SimulatedBank
from tests.helpers import produce, read_topic, values
from tests.http import call, call_text, key_of
from tests.ledger_inputs import ETH_ADDRESS, IBAN, observation
from tests.streams.test_ledger_worker import balances, final, wait_for
from tests.test_cli import cli
from topics import catalogue

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "camt"  # ../shared/samples/camt


@pytest.fixture
def bank():
    simulated = SimulatedBank({IBAN: "USD"}).start()
    yield simulated
    simulated.stop()


def bind(settings, reference: str, account: str) -> None:
    binding = {
        "chain": "bank",
        "address": reference,
        "account_id": account,
        "bound_at": datetime.now(UTC),
    }
    produce(settings, catalogue.ADDRESS_BINDINGS, f"bank:{reference}", binding)


def camt054(worker, message_id: str, indicator: str, amount: str, reference: str, e2e=None):
    body = {
        "message_id": message_id,
        "account_id": IBAN,
        "currency": "USD",
        "credit_debit_indicator": indicator,
        "amount": amount,
        "bank_reference": reference,
        "end_to_end_id": e2e,
    }
    status, answer = call("POST", f"{worker.api_url}/api/v1/reconciliation/camt054", body, 30)
    assert status == 200, answer
    return answer


def health(worker) -> tuple[int, dict]:
    return call("GET", f"{worker.api_url}/api/v1/reconciliation/health")


def withdraw(worker, request_id: str, account: str, asset: str, amount: str, to: str) -> None:
    body = {
        "request_id": request_id,
        "account_id": account,
        "asset": asset,
        "amount": amount,
        "destination_address": to,
    }
    status, answer = call("POST", f"{worker.api_url}/api/v1/withdrawals", body)
    assert status == 202, answer


def test_levels_drive_suspension_and_the_breaker(settings, start_worker, bank):
    settings = settings.with_overrides(bank_api=bank.url)
    worker = start_worker(settings=settings)
    bind(settings, "TKE-ALICE", "alice")
    produce(settings, catalogue.CHAIN_OBSERVATIONS, "bob", observation("bob", "1000", "0xb0b"))

    # a fiat deposit: bank and ledger move together -> OK
    ok = camt054(worker, "M-1", "CRDT", "10000.00", "BNK-1", e2e="TKE-ALICE")
    assert (ok["threshold_level"], ok["action_taken"]) == ("OK", "none")
    assert Decimal(ok["bank_balance"]) == Decimal(ok["ledger_balance"]) == Decimal("10000")
    assert Decimal(balances(worker, "alice")["xUSD"]["balance"]) == 10000
    again = camt054(worker, "M-1", "CRDT", "10000.00", "BNK-1", e2e="TKE-ALICE")
    assert again["duplicate"] is True and Decimal(again["bank_balance"]) == Decimal("10000")
    assert Decimal(balances(worker, "alice")["xUSD"]["balance"]) == 10000  # credited once

    # 3.00 in the bank the ledger does not know: 0.03% -> MINOR, payouts go on
    minor = camt054(worker, "M-2", "CRDT", "3.00", "BNK-2")
    assert (minor["threshold_level"], minor["action_taken"]) == ("MINOR", "discrepancy_logged")
    assert Decimal(minor["difference"]) == Decimal("3")

    # 33.00 in all: 0.33% -> SIGNIFICANT, new payouts of xUSD refused
    significant = camt054(worker, "M-3", "CRDT", "30.00", "BNK-3")
    assert significant["threshold_level"] == "SIGNIFICANT"
    wait_for(lambda: "asset:xUSD" in health(worker)[1]["payouts_suspended"], what="suspension")
    read_topic(  # the suspension must reach the ledger before the request
        settings,
        catalogue.LEDGER_COMMANDS,
        until=lambda rs: sum(r["value"]["kind"] == "BREAKER_CHANGE" for r in rs) >= 8,
    )
    # nothing pays xUSD out directly (no bank payout connector): what takes it out is a
    # cross-chain transfer into USDT, paid on chain; the suspension of xUSD refuses it
    transfer = {
        "request_id": "x-suspended",
        "account_id": "alice",
        "kind": "CROSS_CHAIN",
        "asset": "xUSD",
        "amount": "100.00",
        "destination_asset": "USDT",
        "destination_address": ETH_ADDRESS,
        "deposit_tx_hash": "BNK-1",  # alice's bank deposit above
    }
    status, answer = call("POST", f"{worker.api_url}/api/v1/transfers", transfer)
    assert status == 202, answer
    refused = final(worker, "x-suspended")
    assert (refused["status"], refused["reason"]) == ("REJECTED", "payouts_suspended")
    status, answer = call(
        "POST",
        f"{worker.api_url}/api/v1/withdrawals",
        {"account_id": "alice", "asset": "xUSD", "amount": "5.00", "destination_address": IBAN},
    )
    assert (status, answer["error"]) == (400, "payouts_unavailable")
    assert health(worker)[0] == 200 and health(worker)[1]["status"] == "WARNING"

    # the bank loses 100.00: the ledger exceeds the bank -> CRITICAL, breaker open, 503
    critical = camt054(worker, "M-4", "DBIT", "100.00", "BNK-4")
    assert (critical["threshold_level"], critical["action_taken"]) == (
        "CRITICAL",
        "circuit_breaker_activated",
    )
    wait_for(lambda: health(worker)[0] == 503, what="health 503")
    read_topic(
        settings,
        catalogue.LEDGER_COMMANDS,
        until=lambda rs: sum(r["value"]["kind"] == "BREAKER_CHANGE" for r in rs) >= 16,
    )
    withdraw(worker, "w-held", "bob", "WEI", "100", ETH_ADDRESS)
    held = final(worker, "w-held", ("ACCEPTED",))
    assert held["reason"] == "held_by_circuit_breaker"
    assert read_topic(settings, catalogue.PAYOUT_COMMANDS, timeout_s=2) == []

    # tier 2: the bank API says 10000.00 again; the suspension lifts, the breaker stays
    bank.balances[IBAN] = Decimal("10000.00")
    status, intraday = call(
        "POST", f"{worker.api_url}/api/v1/reconciliation/intradey/{IBAN}", None, 30
    )
    assert status == 200, intraday
    assert (intraday["tier"], intraday["threshold_level"]) == ("TIER2_INTRADAY", "OK")
    assert health(worker)[0] == 503

    # only an operator reset releases the held payout
    reset = cli(settings, "breaker", "reset", "--reason", "bank confirmed the debit reversal")
    assert reset.returncode == 0, reset.stderr
    [command] = values(read_topic(settings, catalogue.PAYOUT_COMMANDS, until_count=1))
    assert command["payout_id"] == "po:bob:w-held"
    wait_for(lambda: health(worker)[0] == 200, what="health 200 after reset")

    summary = call("GET", f"{worker.api_url}/api/v1/reconciliation/summary")[1]
    assert summary["total_accounts"] == 1 and summary["accounts_ok"] == 1
    assert summary["open_discrepancies"] >= 3  # MINOR, SIGNIFICANT and CRITICAL ones
    alerts = {a["kind"] for a in values(read_topic(settings, catalogue.ALERTS, timeout_s=3))}
    assert {"tier1.ok", "tier1.mismatch", "circuit_breaker.activated"} <= alerts
    assert "circuit_breaker.reset" in alerts
    metrics = call_text(f"{worker.api_url}/metrics")
    assert 'token_engine_reconciliation_checks_total{status="CRITICAL",tier="TIER1_REALTIME"}' in (
        metrics
    )
    assert f'token_engine_circuit_breaker_active{{account_id="{IBAN}"}} 0.0' in metrics
    assert 'token_engine_events_processed_total{agent="reconciliation"}' in metrics
    assert 'token_engine_consumer_lag{agent="reconciliation"}' in metrics
    assert 'token_engine_reconciliation_discrepancies{severity="CRITICAL"}' in metrics


def statement_from_sample(day: str) -> bytes:
    """The v4 sample statement, for our bank account and a given date."""
    text = (SAMPLES / "viafintech_053_valid_example_v4.xml").read_text()
    text = text.replace("CH0309000000250090342", IBAN).replace("CHF", "USD")
    return text.replace("<Dt>2016-04-30</Dt>", f"<Dt>{day}</Dt>").encode()


def test_end_of_day_statement_makes_the_snapshot_and_finds_the_differences(settings, start_worker):
    worker = start_worker()
    bind(settings, "TKE-CAROL", "carol")
    today = datetime.now(UTC).date().isoformat()
    # the ledger, seeded from three of the statement's credits: one with the wrong amount,
    # and one deposit the statement does not have
    seeded = [
        ("20160530007602769939022000000012", "1000.00"),
        ("20160527007602769947016000000012", "620.00"),
        ("20160323007602726186629000000012", "111.00"),  # the bank booked 110.00
        ("LEDGER-ONLY-1", "5.00"),
    ]
    for index, (reference, amount) in enumerate(seeded):
        camt054(worker, f"SEED-{index}", "CRDT", amount, reference, e2e="TKE-CAROL")
    assert Decimal(balances(worker, "carol")["xUSD"]["balance"]) == Decimal("1736")

    status, eod = call(
        "POST", f"{worker.api_url}/api/v1/reconciliation/eod", None, 30
    )  # no body: refused
    assert status == 400
    answer = post_xml(f"{worker.api_url}/api/v1/reconciliation/eod", statement_from_sample(today))
    assert answer["tier"] == "TIER3_EOD"
    snapshot = answer["snapshot"]
    assert snapshot["snapshot_date"] == today
    assert Decimal(snapshot["closing_balance"]) == Decimal("322689.77")
    assert Decimal(snapshot["ledger_balance"]) == Decimal("1736.00")
    assert answer["threshold_level"] == "CRITICAL"  # 322689.77 vs 1736: far apart
    assert snapshot["entries_matched"] == 2
    found = sorted(
        (d["type"], d["reference"])
        for d in answer["discrepancies"]
        if d["type"] != "BALANCE_MISMATCH"
    )
    debits = [
        "20160401001027080060699001000107",
        "20160430001001080060699000901107",
        "20160430001001080060699015801107",
        "20160430001025080060699000000012",
        "20160430001025080060699000000031",
        "20160430001025080060699000010012",
        "20160410375244000000000000000082",
        "20160410375244000000000000000072",
    ]
    unmatched_credits = ["20160410375244000000000000000081", "20160410375244000000000000000071"]
    assert found == sorted(
        [("AMOUNT_MISMATCH", "20160323007602726186629000000012")]
        + [("MISSING_TXN", ref) for ref in debits + unmatched_credits]
        + [("MISSING_TXN", "ledger-only-1")]
    )
    assert any(d["type"] == "BALANCE_MISMATCH" for d in answer["discrepancies"])
    report = Path(snapshot["report_path"])
    assert report.exists() and report.with_suffix(".csv").exists()

    # a second statement for the date replaces the snapshot, recorded
    replacement = statement_from_sample(today).replace(
        b"20160430375204000008573", b"20160430375204000008574"
    )
    second = post_xml(f"{worker.api_url}/api/v1/reconciliation/eod", replacement)
    assert second["snapshot"]["replaces"] == "20160430375204000008573"
    snapshots = values(read_topic(settings, catalogue.EOD_SNAPSHOTS, until_count=2))
    assert {s["snapshot_id"] for s in snapshots} == {f"{IBAN}:{today}"}


def post_xml(url: str, data: bytes) -> dict:
    import json
    import urllib.request

    headers = {"Content-Type": "application/xml", "Authorization": f"Bearer {key_of(url, 'POST')}"}
    request = urllib.request.Request(url, data, headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


CHF_ASSET = """
[assets.xCHF]
unit = "CHF"
chain = "bank"
bank_account = "CH0309000000250090342"
currency = "CHF"
decimals = 2
"""


def test_drop_directory_publishes_each_file_once_and_rejects_garbage(settings, start_worker):
    assets = settings.data_dir / "assets.toml"
    assets.parent.mkdir(parents=True, exist_ok=True)
    assets.write_text(settings.assets_file.read_text() + CHF_ASSET)
    worker = start_worker(settings=settings.with_overrides(assets_file=assets))
    inbox = settings.data_dir / "worker-0" / "bank-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    sample = (SAMPLES / "viafintech_054_valid_example.xml").read_bytes()
    written = inbox / "a.xml.part"  # the convention: write under another name, then rename
    written.write_bytes(sample)
    written.rename(inbox / "a.xml")
    wait_for(lambda: (inbox / "processed" / "a.xml").exists(), what="a.xml processed")
    (inbox / "again.xml").write_bytes(sample)
    (inbox / "broken.xml").write_bytes(b"<Document>")
    (inbox / "elsewhere.xml").write_bytes(sample.replace(b"CH0309000000250090342", b"CH93"))
    wait_for(lambda: (inbox / "rejected" / "broken.xml").exists(), what="broken.xml rejected")
    wait_for(lambda: (inbox / "processed" / "again.xml").exists(), what="again.xml processed")
    wait_for(lambda: (inbox / "rejected" / "elsewhere.xml").exists(), what="elsewhere rejected")
    assert "not_xml" in (inbox / "rejected" / "broken.xml.error.txt").read_text()
    # a bank account not configured is refused at once, not "published" then dead-lettered
    assert "unknown_bank_account" in (inbox / "rejected" / "elsewhere.xml.error.txt").read_text()
    [notification] = values(read_topic(settings, catalogue.BANK_NOTIFICATIONS, until_count=1))
    assert len(notification["entries"]) == 4
    assert len(read_topic(settings, catalogue.BANK_NOTIFICATIONS, timeout_s=2)) == 1
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=2))
    reasons = {letter["reason"] for letter in letters}
    assert reasons == {"not_xml", "unknown_bank_account"}
    assert worker.process.alive()
