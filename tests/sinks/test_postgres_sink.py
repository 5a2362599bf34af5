"""The Postgres sink against the real broker and Postgres: exact, replayable, fault-proof."""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY

from sinks.migrate import database_url_named, migrate
from sinks.postgres import PostgresSink
from sinks.rows import STATEMENTS, rows
from sinks.verify import verify_chains, verify_postgres
from tests.helpers import produce, produce_many, read_all, read_topic, values
from tests.http import call
from tests.ledger_inputs import T0, observation, payout_result, withdrawal
from tests.streams.test_ledger_worker import wait_for
from tests.test_cli import cli
from tokengine.processes import ManagedProcess
from tokengine.services import start_postgres
from topics import catalogue

TABLES = {
    "ledger_transactions": "transaction_id",
    "ledger_postings": "transaction_id, posting_index",
    "accounts": "account_id, asset",
    "deposits": "deposit_id",
    "payouts": "payout_id",
    "request_results": "request_id",
    "breaker_history": "scope, changed_at",
    "audit_log": "event_id",
}


def new_database(server_url: str) -> str:
    name = f"sink_{uuid.uuid4().hex[:10]}"
    admin = database_url_named(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = database_url_named(server_url, name)
    migrate(url)
    return url


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row of the materialised tables (audit positions left out: a cursor, not data)."""
    tables = {}
    with psycopg.connect(url) as conn:
        for table, order in TABLES.items():
            columns = "*" if table != "audit_log" else "event_id, topic, operation, changes"
            tables[table] = conn.execute(
                f"SELECT {columns} FROM {table} ORDER BY {order}"
            ).fetchall()
    return tables


class SinkThread:
    def __init__(self, settings) -> None:
        self.sink = PostgresSink(settings)
        self.thread = threading.Thread(target=self.sink.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.sink.stop()
        self.thread.join(30)


def ledger_workload(settings, accounts: int) -> dict[str, Decimal]:
    """Deposits, one withdrawal each, half confirmed and half failed; the final balances."""
    names = [f"s{i}" for i in range(accounts)]
    now = datetime.now(UTC)
    produce_many(
        settings,
        catalogue.CHAIN_OBSERVATIONS,
        [(n, observation(n, "1000", f"0x{i:x}")) for i, n in enumerate(names)],
    )
    read_topic(  # deposits first: withdrawals from another topic may overtake them
        settings,
        catalogue.BALANCE_UPDATES,
        until=lambda rs: {r["value"]["account_id"] for r in rs} >= set(names),
    )
    produce_many(
        settings,
        catalogue.WITHDRAWAL_REQUESTS,
        [(n, {**withdrawal(n, f"w-{n}", "10"), "created_at": now}) for n in names],
    )
    commands = values(read_topic(settings, catalogue.PAYOUT_COMMANDS, until_count=accounts))
    results = []
    expected = {}
    for i, command in enumerate(sorted(commands, key=lambda c: c["account_id"])):
        account = command["account_id"]
        if i % 2 == 0:  # amount 10 + fee 2 + network fee paid by the operator
            results.append(
                (account, payout_result(account, command["payout_id"], "CONFIRMED", "1"))
            )
            expected[account] = Decimal("988")
        else:  # failure fee 1
            results.append(
                (account, payout_result(account, command["payout_id"], "FAILED", None, "x"))
            )
            expected[account] = Decimal("999")
    produce_many(settings, catalogue.PAYOUT_RESULTS, results)
    return expected


def postgres_balances(url: str) -> dict[str, Decimal]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT account_id, balance FROM accounts WHERE asset = 'WEI'"))


def transactions_on_topic(settings) -> int:
    entries = values(read_all(settings, catalogue.LEDGER_ENTRIES))
    return len({e["transaction_id"] for e in entries})


def offsets_sum(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT coalesce(sum(next_offset), 0) FROM sink_offsets").fetchone()[0]


def row_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_sink_matches_the_topics_replays_unchanged_and_verifies_the_chain(
    settings, services, start_worker
):
    url = new_database(services.database_url)
    settings = settings.with_overrides(database_url=url)
    worker = start_worker(settings=settings)
    sink = SinkThread(settings)
    expected = ledger_workload(settings, 20)
    wait_for(lambda: postgres_balances(url) == expected, what="balances in Postgres")
    transactions = transactions_on_topic(settings)
    wait_for(lambda: row_count(url, "ledger_transactions") == transactions, what="transactions")
    sink.stop()
    assert transactions == 20 * 4 - 10 * 2  # deposit + (withdrawal, fee, network fee | failure fee)
    with psycopg.connect(url) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM payouts GROUP BY state").fetchall())
        assert states == {"CONFIRMED": 10, "FAILED": 10}
        done = conn.execute("SELECT count(*) FROM request_results WHERE status <> 'ACCEPTED'")
        assert done.fetchone()[0] == 20
    assert verify_postgres(url).ok
    assert verify_chains("topic", values(read_all(settings, catalogue.LEDGER_ENTRIES))).ok
    before = dump(url)
    assert rebuilt_from_the_audit_trail(worker.api_url) == expected

    # a replay of every topic from offset 0 leaves every table as it was
    reached = offsets_sum(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM sink_offsets")
    replay = SinkThread(settings)
    wait_for(lambda: offsets_sum(url) == reached, what="the replay to reach the same offsets")
    replay.stop()
    assert replay.sink.rows_written > 0
    assert dump(url) == before

    # an altered row is reported precisely, by the library and by the CLI
    with psycopg.connect(url, autocommit=True) as conn:
        account, sequence = conn.execute(
            "UPDATE ledger_postings p SET amount = amount + 1 FROM ledger_transactions t"
            " WHERE p.transaction_id = t.transaction_id AND t.account_id = 's3'"
            " AND t.sequence = 2 AND p.posting_index = 0 RETURNING t.account_id, t.sequence"
        ).fetchone()
    result = verify_postgres(url)
    assert not result.ok
    assert result.breaks[0].startswith("account s3 sequence 2: transaction ")
    assert "content altered" in result.breaks[0]
    shown = cli(settings, "verify-ledger")
    assert shown.returncode == 1 and "account s3 sequence 2" in shown.stdout
    assert "topic: " in shown.stdout and "OK" in shown.stdout.splitlines()[-1]


def rebuilt_from_the_audit_trail(api_url: str) -> dict[str, Decimal]:
    """Page through GET /api/v1/audit and fold the ledger postings into user balances."""
    balances: dict[str, Decimal] = {}
    cursor, pages = 0, 0
    while True:
        status, page = call("GET", f"{api_url}/api/v1/audit?cursor={cursor}&limit=25")
        assert status == 200, page
        if not page["entries"]:
            break
        positions = [entry["position"] for entry in page["entries"]]
        assert positions == sorted(positions) and positions[0] > cursor
        for entry in page["entries"]:
            if entry["operation"].startswith("ledger."):
                for posting in entry["changes"]["postings"]:
                    if posting["ledger_account"].startswith("user:"):
                        account = posting["ledger_account"].split(":")[1]
                        sign = 1 if posting["direction"] == "CREDIT" else -1
                        amount = sign * Decimal(posting["amount"])
                        balances[account] = balances.get(account, Decimal(0)) + amount
        cursor, pages = page["next_cursor"], pages + 1
    assert pages > 1
    return balances


def test_a_constraint_violation_goes_to_dead_letters_and_the_sink_goes_on(settings, services):
    url = new_database(services.database_url)
    settings = settings.with_overrides(database_url=url)
    bad = {
        "account_id": "neg",
        "asset": "WEI",
        "balance": Decimal("-5"),
        "reserved": Decimal(0),
        "available": Decimal("-5"),
        "version": 1,
        "cause_id": "x",
        "updated_at": observation("x", "1", "0x1")["observed_at"],
    }
    good = {**bad, "account_id": "pos", "balance": Decimal(5), "available": Decimal(5)}
    counted = {"component": "postgres-sink", "reason": "constraint_violation"}
    before = REGISTRY.get_sample_value("token_engine_dead_letters_total", counted) or 0.0
    produce(settings, catalogue.BALANCE_UPDATES, "neg", bad)
    produce(settings, catalogue.BALANCE_UPDATES, "pos", good)
    sink = SinkThread(settings)
    wait_for(lambda: postgres_balances(url) == {"pos": Decimal(5)}, what="good row")
    sink.stop()
    [letter] = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=1))
    assert (letter["reason"], letter["component"]) == ("constraint_violation", "postgres-sink")
    assert "accounts_balance_check" in letter["error"]
    # counted where the sink serves its /metrics (the DeadLettersGrowing rule reads it)
    assert REGISTRY.get_sample_value("token_engine_dead_letters_total", counted) == before + 1


def test_a_value_postgres_cannot_store_goes_to_dead_letters_and_the_sink_goes_on(
    settings, services
):
    # only IntegrityError was dead-lettered: a DataError (a date Postgres refuses, a NUL
    # byte in a text) stopped the sink for good
    url = new_database(services.database_url)
    settings = settings.with_overrides(database_url=url)
    snapshot = {
        "snapshot_id": "GB33:2026-02-30",
        "account_id": "GB33BUKB20201555555555",
        "asset": "xUSD",
        "snapshot_date": "2026-02-30",
        "statement_message_id": "M-1",
        "opening_balance": Decimal(0),
        "closing_balance": Decimal(0),
        "ledger_balance": Decimal(0),
        "difference": Decimal(0),
        "level": "OK",
        "entries_matched": 0,
        "entries_unmatched": 0,
        "replaces": None,
        "report_path": None,
        "created_at": T0,
    }
    produce(settings, catalogue.EOD_SNAPSHOTS, snapshot["account_id"], snapshot)
    update = {
        "account_id": "nul",
        "asset": "WEI",
        "balance": Decimal(5),
        "reserved": Decimal(0),
        "available": Decimal(5),
        "version": 1,
        "cause_id": "request:\x00",
        "updated_at": T0,
    }
    produce(settings, catalogue.BALANCE_UPDATES, "nul", update)
    produce(
        settings, catalogue.BALANCE_UPDATES, "pos", {**update, "account_id": "pos", "cause_id": "x"}
    )
    sink = SinkThread(settings)
    wait_for(lambda: postgres_balances(url) == {"pos": Decimal(5)}, what="the good row")
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=2))
    sink.stop()
    assert sorted(letter["source_topic"] for letter in letters) == sorted(
        [catalogue.EOD_SNAPSHOTS, catalogue.BALANCE_UPDATES]
    )
    assert {letter["reason"] for letter in letters} == {"invalid_value"}


@pytest.mark.parametrize("reported_after_s", [-3600, 3600])
def test_a_payout_row_is_the_same_whichever_topic_the_sink_reads_first(
    services, reported_after_s: int
) -> None:
    """A payout's command and its result come on two topics: the sink may read either first."""
    command = {
        "payout_id": "po:a:w1",
        "account_id": "a",
        "request_id": "w1",
        "chain": "ethereum",
        "asset": "WEI",
        "amount": Decimal("3.000000000000000000"),
        "fee": Decimal("2.000000000000000000"),
        "destination_address": "0x52908400098527886E0F7030069857D2E4169EE7",
        "created_at": T0,
    }
    result = {
        **payout_result("a", "po:a:w1", "CONFIRMED", "1"),
        "reported_at": T0 + timedelta(seconds=reported_after_s),
    }
    events = [(catalogue.PAYOUT_COMMANDS, command), (catalogue.PAYOUT_RESULTS, result)]
    payouts = []
    for order in (events, events[::-1]):
        url = new_database(services.database_url)
        with psycopg.connect(url) as conn:
            for topic, value in order:
                for statement, params in rows(topic, value):
                    conn.execute(STATEMENTS[statement], params)
        payouts.append(dump(url)["payouts"])
    assert payouts[0] == payouts[1]
    [row] = payouts[0]
    # the last columns: updated_at (the later of the two), network_fee_asset (the payout's)
    assert row[-2:] == (max(T0, result["reported_at"]), None)


def test_a_sweep_row_keeps_its_final_state_whatever_comes_again(services) -> None:
    submitted = {
        "sweep_id": "ethereum:0xd1:0", "chain": "ethereum", "asset": "ETH",
        "from_address": "0xd1", "to_address": "0xc0", "to_role": "COLD",
        "amount": Decimal("0.99"), "status": "SUBMITTED", "tx_hash": "0xsw", "nonce": 0,
        "raw_transaction": "0x00", "network_fee": None, "network_fee_asset": "ETH",
        "reason": None, "detail": None, "reported_at": T0,
    }  # fmt: skip
    confirmed = {**submitted, "status": "CONFIRMED", "network_fee": Decimal("0.01"),
                 "reported_at": T0 + timedelta(seconds=5)}  # fmt: skip
    url = new_database(services.database_url)
    with psycopg.connect(url) as conn:
        for value in (submitted, confirmed, submitted):  # a redelivered SUBMITTED last
            for statement, params in rows(catalogue.SWEEP_RESULTS, value):
                conn.execute(STATEMENTS[statement], params)
        found = conn.execute(
            "SELECT state, to_role, amount, network_fee, updated_at FROM sweeps"
        ).fetchall()
        operations = conn.execute(
            "SELECT operation FROM audit_log WHERE topic = %s ORDER BY 1", [catalogue.SWEEP_RESULTS]
        ).fetchall()
    final = ("CONFIRMED", "COLD", Decimal("0.99"), Decimal("0.01"), confirmed["reported_at"])
    assert found == [final]
    assert operations == [("sweep.confirmed",), ("sweep.submitted",)]  # each event once


def start_sink_process(settings, log_dir, index: int) -> ManagedProcess:
    env = {**os.environ, **settings.as_environ()}
    argv = [sys.executable, "-m", "tokengine", "sink"]
    return ManagedProcess.start(f"sink-{index}", argv, log_dir / f"sink-{index}.log", env=env)


@pytest.mark.timeout(600)
def test_sigkill_of_the_sink_and_a_postgres_restart_change_nothing(
    settings, services, start_worker, tmp_path
):
    rng = random.Random(int(os.environ.get("TOKENGINE_TEST_SEED", time.time())))
    pg_dir = Path(tempfile.mkdtemp(prefix="tokengine-pg-"))  # the postgres user must reach it
    url, postgres = start_postgres(pg_dir)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    migrate(url)
    faulty = settings.with_overrides(database_url=url)
    start_worker()
    sinks = [start_sink_process(faulty, tmp_path, 0)]
    stop_chaos = threading.Event()
    kills = []

    def chaos() -> None:
        for round_ in range(3):
            if stop_chaos.wait(rng.uniform(0.5, 2.0)):
                return
            sinks[-1].kill()
            kills.append(round_)
            sinks.append(start_sink_process(faulty, tmp_path, len(sinks)))
        if not stop_chaos.wait(rng.uniform(0.2, 1.0)):
            nonlocal postgres
            postgres.stop()
            kills.append("postgres")
            time.sleep(rng.uniform(0.5, 2.0))  # the outage itself, not a synchronisation
            postgres = start_postgres(pg_dir, port)[1]

    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    try:
        expected = ledger_workload(settings, 300)
        chaos_thread.join()
        assert kills == [0, 1, 2, "postgres"]
        wait_for(lambda: postgres_balances(url) == expected, timeout_s=120, what="balances")
        transactions = transactions_on_topic(settings)
        wait_for(lambda: row_count(url, "ledger_transactions") == transactions, what="all rows")
        assert sinks[-1].alive(), sinks[-1].log_tail()
        # the same topics written once, without faults, into a fresh database
        clean_url = new_database(services.database_url)
        clean = SinkThread(
            settings.with_overrides(database_url=clean_url, app_id=f"clean-{settings.app_id}")
        )
        wait_for(lambda: postgres_balances(clean_url) == expected, what="clean balances")
        wait_for(lambda: row_count(clean_url, "ledger_transactions") == transactions, what="clean")
        wait_for(
            lambda: row_count(clean_url, "audit_log") == row_count(url, "audit_log"), what="audit"
        )
        clean.stop()
        assert dump(url) == dump(clean_url)
        assert verify_postgres(url).ok
    finally:
        stop_chaos.set()
        chaos_thread.join()
        for process in sinks:
            process.stop()
        postgres.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
