"""`make run` twice is the same ledger: `tokengine up` keeps the Kafka log (tansu on s3://
over s3rver), Postgres, the chain nodes and the keys under DATA_DIR.

One data directory, three runs of `up`: money moved through the API in the first; stopped
with SIGTERM, the second shows the same balances, request results, Postgres rows and
`verify-ledger`; then transfers under load while every process of the run is SIGKILLed at
once, and the third run has applied each acknowledged transfer exactly once and lost none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg

from streams.ledger.batch import SETTLED_HOLE_S
from tests.processes import alive, descendants, start_up
from tokengine.api_client import call

STEP_TIMEOUT_S = 90.0
LOAD_TRANSFERS = 60
TRANSFER = Decimal("0.0001")


class Run:
    """One `tokengine up` on the shared data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.up, lines, self.env = start_up(data_dir)
        ready = lines[-1]
        assert ready.startswith("ready:"), "\n".join(lines)
        fields = dict(part.split("=", 1) for part in ready.removeprefix("ready: ").split())
        self.api, self.eth = fields["api"], fields["eth"]
        self.env["TOKENGINE_KAFKA"] = fields["kafka"]
        self.env["TOKENGINE_DATABASE_URL"] = fields["postgres"]
        self.data_dir = data_dir
        self.processes = descendants(self.up.pid) | {self.up.pid}
        # the rest of its output (progress lines) is read so that `up` never blocks on it
        threading.Thread(target=self.up.stdout.read, daemon=True).start()

    def tokengine(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tokengine", *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        self.up.send_signal(signal.SIGTERM)
        assert self.up.wait(90) == 0
        assert not [pid for pid in self.processes if alive(pid)]

    def kill_everything(self) -> None:
        """SIGKILL `up` and every process under it at the same instant (no clean stop)."""
        everything = descendants(self.up.pid) | {self.up.pid}
        for sig in (signal.SIGSTOP, signal.SIGKILL):  # all frozen first: none reacts to another
            for pid in everything:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        self.up.wait(30)
        # gone from /proc, not only dead: a zombie's pid still looks taken to Postgres
        wait_for(
            lambda: not [pid for pid in everything if Path(f"/proc/{pid}").exists()],
            "every process reaped",
        )

    def balances(self) -> dict[tuple[str, str], Decimal]:
        shown = json.loads(self.tokengine("balances", "--json"))
        return {(row["account_id"], row["asset"]): Decimal(row["balance"]) for row in shown}

    def result(self, key: str, request_id: str) -> dict | None:
        status, body = call("GET", f"{self.api}/api/v1/requests/{request_id}", key=key)
        return body if status == 200 else None

    def final_result(self, key: str, request_id: str) -> dict:
        return wait_for(
            lambda: (
                (r := self.result(key, request_id))
                and r["status"] in ("COMPLETED", "REJECTED", "FAILED")
                and r
            ),
            f"request {request_id}",
        )

    def rows(self) -> dict[str, int]:
        with psycopg.connect(self.env["TOKENGINE_DATABASE_URL"]) as conn:
            tables = ("ledger_transactions", "ledger_postings", "accounts", "request_results")
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}

    def verified(self, source: str) -> str:
        return self.tokengine("verify-ledger", "--source", source).strip()

    def sink_caught_up(self) -> dict[str, int]:
        """Postgres rows, once they stop changing and hold every ledger transaction."""
        last: dict[str, int] = {}

        def settled():
            nonlocal last
            now = self.rows()
            same = now == last
            last = now
            return same and now

        return wait_for(settled, "the sink to settle", interval_s=2.0)


def wait_for(predicate, what: str, timeout_s: float = STEP_TIMEOUT_S, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def deposit_eth(run: Run, account: str, wei: int) -> None:
    from eth_account import Account
    from web3 import Web3

    address = Account.create().address
    run.tokengine("bind", "--chain", "ethereum", "--address", address, "--account", account)
    run.tokengine("price", "ETH", "3000")  # 0.05 ETH = 150 USD: a few confirmations
    w3 = Web3(Web3.HTTPProvider(run.eth))
    w3.eth.send_transaction({"from": w3.eth.accounts[1], "to": address, "value": wei})
    wait_for(lambda: run.balances().get((account, "ETH")) == Decimal(wei) / 10**18, "deposit")


def transfer(run: Run, key: str, request_id: str) -> int:
    body = {
        "request_id": request_id,
        "account_id": "zoe",
        "kind": "INTERNAL",
        "asset": "ETH",
        "amount": str(TRANSFER),
        "to_account_id": "yan",
    }
    try:
        status, _ = call("POST", f"{run.api}/api/v1/transfers", body, timeout_s=5, key=key)
    except OSError:
        return 0  # the run died under the call: not acknowledged
    return status


def test_up_twice_is_the_same_ledger_after_sigterm_and_after_sigkill(tmp_path) -> None:
    data_dir = tmp_path / "var"
    first = Run(data_dir)
    try:
        key_file = data_dir / "client.key"
        first.tokengine(
            "keys", "create", "--role", "client", "--account", "zoe", "--account", "yan",
            "--out", str(key_file),
        )  # fmt: skip
        key = key_file.read_text().strip()
        deposit_eth(first, "zoe", 5 * 10**16)
        withdrawal = {
            "request_id": "restart-w1",
            "account_id": "zoe",
            "asset": "ETH",
            "amount": "0.01",
            "destination_address": "0x000000000000000000000000000000000000dEaD",
        }
        status, _ = call("POST", f"{first.api}/api/v1/withdrawals", withdrawal, key=key)
        assert status == 202
        paid = first.final_result(key, "restart-w1")
        assert paid["status"] == "COMPLETED"
        before = first.balances()
        rows_before = first.sink_caught_up()
        verified_before = first.verified("topic")
        assert "OK" in verified_before and rows_before["ledger_transactions"] > 0
        first.stop()
    finally:
        if first.up.poll() is None:
            first.up.kill()

    second = Run(data_dir)
    try:
        assert second.balances() == before
        assert second.result(key, "restart-w1") == paid
        assert second.rows() == rows_before
        assert second.verified("topic") == verified_before
        assert second.verified("postgres") == verified_before.replace("topic:", "postgres:")
        # transfers under load; every process of the run SIGKILLed in the middle
        acknowledged: list[str] = []
        refused: list[tuple[str, int]] = []

        def load() -> None:
            for n in range(LOAD_TRANSFERS):
                request_id = f"restart-t{n}"
                status = transfer(second, key, request_id)
                if status == 202:
                    acknowledged.append(request_id)
                elif status:
                    refused.append((request_id, status))

        sender = threading.Thread(target=load)
        sender.start()
        wait_for(lambda: len(acknowledged) >= LOAD_TRANSFERS // 3, "a third acknowledged", 60)
        second.kill_everything()
        sender.join(60)
        assert not refused, refused
    finally:
        if second.up.poll() is None:
            second.up.kill()

    third = Run(data_dir)
    try:
        for request_id in acknowledged:
            assert third.final_result(key, request_id)["status"] == "COMPLETED", request_id

        # COMPLETED is the debit leg; the credit leg reaches yan's partition after it (through
        # the clearing account): every leg applied once = zoe + yan back at zoe's total. A
        # lost leg never gets there, one applied twice overshoots it.
        def both_legs_applied() -> tuple[Decimal, Decimal] | None:
            shown = third.balances()
            zoe, yan = shown[("zoe", "ETH")], shown.get(("yan", "ETH"), Decimal(0))
            return (zoe, yan) if zoe + yan >= before[("zoe", "ETH")] else None

        # (a broker killed mid-write may leave a hole in ledger-commands: the ledger passes
        # it once settled, SETTLED_HOLE_S after the record that follows it)
        zoe, yan = wait_for(both_legs_applied, "every credit leg applied", SETTLED_HOLE_S * 4)
        assert zoe + yan == before[("zoe", "ETH")]  # nothing applied twice, nothing minted
        moved = yan / TRANSFER
        assert moved == int(moved) and len(acknowledged) <= moved <= LOAD_TRANSFERS
        from_topic = third.verified("topic")
        assert from_topic.endswith("OK")
        rows = third.sink_caught_up()
        assert rows["ledger_transactions"] > rows_before["ledger_transactions"]
        # the sink applied each transaction once: its rows are the topic's transactions
        assert third.verified("postgres") == from_topic.replace("topic:", "postgres:")
        third.stop()
    finally:
        if third.up.poll() is None:
            third.up.kill()
