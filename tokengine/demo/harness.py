"""The demo's harness: the services it starts, the clients it talks through, its report.

`Demo` starts what `up` starts (broker, Postgres, anvil, bitcoind when installed, sink,
connectors, a worker) plus a simulated bank balance API, and gives the steps their
plumbing: the API, the topics, the chains, waiting on a condition, the report's checks.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bitcoinlib.keys import HDKey
from eth_account import Account
from rich.console import Console
from web3 import Web3

from connectors.bitcoin import BitcoinRpc
from core.access import BANK, CLIENT, OPERATOR
from core.assets import load_assets
from core.config import Settings
from core.secrets import redacted, write_secret_file
from sinks.migrate import migrate
from standins.simulated_bank import SimulatedBank
from standins.solidity import deploy_token
from tokengine.api_client import call
from tokengine.chain_nodes import embedded_btc_payout_key, embedded_payout_keystore
from tokengine.demo.scenario import AED_ACCOUNT, USD_ACCOUNT, demo_assets
from tokengine.processes import free_port
from tokengine.services import EmbeddedServices
from tokengine.up import ChildHandle, get_json, start_child, start_worker
from topics import catalogue
from topics.admin import create_topics
from topics.authentication import signing_producer
from topics.codec import make_codec
from topics.kafka import NotAcknowledged, flush
from topics.operator_records import issue_key
from topics.tail import read_to_end

STEP_TIMEOUT_S = 60.0
console = Console(highlight=False, width=110)


class DemoFailure(RuntimeError):
    """A step could not go on (a timeout, a refusal): the report fails, the run stops."""


@dataclass
class Report:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        console.print(f"   {mark} {name}" + (f": {detail}" if detail else ""))
        return ok

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


class Demo:
    """The running scenario: its services, clients and report; steps take it as `demo`."""

    def __init__(self, settings: Settings, load_requests: int) -> None:
        self.base = settings
        self.load_requests = load_requests
        self.report = Report()
        self.step_number = 0
        self.children: list[ChildHandle] = []

    def step(self, title: str) -> None:
        self.step_number += 1
        console.print(f"\n[bold]{self.step_number}. {title}[/bold]")

    def api(self, method: str, path: str, body: Any = None, raw: bytes | None = None):
        """Call the API with the key of the role the route needs (every call has one)."""
        role = OPERATOR
        if path in ("/api/v1/deposits", "/api/v1/withdrawals", "/api/v1/transfers"):
            role = CLIENT
        elif path in ("/api/v1/bank/camt", "/api/v1/reconciliation/camt054",
                      "/api/v1/reconciliation/eod"):  # fmt: skip
            role = BANK
        return call(method, self.api_url + path, body, timeout_s=30, raw=raw, key=self.keys[role])

    def wait(self, predicate, what: str, timeout_s: float = STEP_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.1)
        raise DemoFailure(f"timed out waiting for {what}")

    def balance(self, account: str, asset: str) -> Decimal:
        status, body = self.api("GET", f"/api/v1/accounts/{account}/balances")
        if status != 200:
            return Decimal(0)
        return Decimal(body["balances"].get(asset, {}).get("balance", "0"))

    def result(self, request_id: str, statuses=("COMPLETED", "REJECTED", "FAILED")) -> dict:
        def done():
            status, body = self.api("GET", f"/api/v1/requests/{request_id}")
            return body if status == 200 and body["status"] in statuses else None

        return self.wait(done, f"request {request_id}")

    def produce(self, topic: str, key: str, value: dict) -> None:
        self.producer.produce(
            self.settings.topic_prefix + topic, self.codec.encode(topic, value), key.encode()
        )
        try:
            flush(self.producer, topic)
        except NotAcknowledged as error:
            raise DemoFailure(str(error)) from error

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])

    def start(self, services: EmbeddedServices) -> None:
        self.step("Start: broker, Postgres, Ethereum node, sink, connectors, worker")
        data_dir = Path(tempfile.mkdtemp(prefix="tokengine-demo-"))
        run = uuid.uuid4().hex[:6]
        settings = self.base.with_overrides(
            data_dir=data_dir, topic_prefix=f"demo{run}.", app_id=f"demo-{run}"
        )
        services.settings = settings
        settings = services.start()
        self.w3 = Web3(Web3.HTTPProvider(settings.eth_rpc))
        self.btc = (
            BitcoinRpc(settings.btc_rpc, settings.btc_rpc_cookie_file) if settings.btc_rpc else None
        )
        self.token = deploy_token(self.w3, self.w3.eth.accounts[0], "TOK", 6, 10**15)
        assets_file = data_dir / "assets.toml"
        # the pool's account key, made for this run: the engine reads its xpub, the
        # sweeper its private key (a secret file); the cold wallet's key is not kept at all
        pool_key = HDKey().subkey_for_path("m/44'/60'/0'")
        self.pool_xpub = pool_key.wif_public()
        sweep_key = write_secret_file(
            data_dir / "secrets" / "eth-pool.xprv", pool_key.wif_private()
        )
        self.cold_wallet = Account.create().address
        assets_file.write_text(demo_assets(self.token.address, self.pool_xpub, self.cold_wallet))
        self.bank = SimulatedBank({AED_ACCOUNT: "AED", USD_ACCOUNT: "USD"}).start()
        settings = settings.with_overrides(
            assets_file=assets_file,
            bank_api=self.bank.url,
            eth_start_block=self.w3.eth.block_number,
            intraday_interval_s=3600.0,
            eth_sweep_key_file=sweep_key,
        )
        create_topics(settings.kafka, settings.topic_prefix)
        migrate(settings.database_url)
        settings = embedded_btc_payout_key(embedded_payout_keystore(settings))
        self.settings = settings
        self.codec = make_codec(settings.schema_registry, settings.topic_prefix)
        self.producer = signing_producer(settings, catalogue.OPERATOR)
        banks = sorted(load_assets(settings.assets_file).bank_accounts)
        roles = {CLIENT: ["*"], BANK: banks, OPERATOR: []}  # the upstream service, the bank
        self.keys = {
            role: issue_key(settings, self.codec, role, accounts, f"demo {role.lower()}",
                            "demo")[0]
            for role, accounts in roles.items()
        }  # fmt: skip
        self.children = [
            ChildHandle("sink", start_child(settings, "sink")),
            ChildHandle("connectors", start_child(settings, "connectors")),
        ]
        port = free_port()
        self.worker = start_worker(settings, 0, port)
        self.api_url = f"http://127.0.0.1:{port}"
        self.wait(lambda: get_json(self.api_url + "/api/v1/health")[0] == 200, "the worker", 90)
        console.print(
            f"   kafka={settings.kafka} postgres={redacted(settings.database_url)} "
            f"eth={settings.eth_rpc} btc={redacted(settings.btc_rpc) or 'none'}"
            f"\n   api={self.api_url} data={data_dir}"
        )

    def stop(self, services: EmbeddedServices) -> None:
        for child in self.children:
            child.process.stop()
        if hasattr(self, "worker"):
            self.worker.stop()
        if hasattr(self, "bank"):
            self.bank.stop()
        services.stop()

    def observed(self, tx_hash: str) -> dict | None:
        found = [
            o
            for o in read_to_end(self.settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=5)
            if o["tx_hash"].lower() == tx_hash.lower()
        ]
        return found[-1] if found else None

    def alerted(self, kind: str, deposit_id: str) -> bool:
        alerts = read_to_end(self.settings, catalogue.ALERTS, timeout_s=5)
        return any(a["kind"] == kind and a["details"].get("deposit_id") == deposit_id
                   for a in alerts)  # fmt: skip

    def camt054(
        self,
        message_id: str,
        account: str,
        indicator: str,
        amount: str,
        ref: str,
        e2e: str | None = None,
    ) -> dict:
        body = {
            "message_id": message_id,
            "account_id": account,
            "currency": "AED" if account == AED_ACCOUNT else "USD",
            "credit_debit_indicator": indicator,
            "amount": amount,
            "bank_reference": ref,
            "end_to_end_id": e2e,
        }
        status, answer = self.api("POST", "/api/v1/reconciliation/camt054", body)
        if status != 200:
            raise DemoFailure(f"camt.054 {message_id}: {status} {answer}")
        return answer

    def withdraw(self, request_id: str, user: str, asset: str, amount: str, to: str) -> dict:
        body = {
            "request_id": request_id,
            "account_id": user,
            "asset": asset,
            "amount": amount,
            "destination_address": to,
        }
        status, answer = self.api("POST", "/api/v1/withdrawals", body)
        if status != 202:
            raise DemoFailure(f"withdrawal {request_id}: {status} {answer}")
        return answer

    def payout_result(self, payout_id: str) -> dict:
        def final():
            results = [
                r
                for r in read_to_end(self.settings, catalogue.PAYOUT_RESULTS, timeout_s=5)
                if r["payout_id"] == payout_id and r["status"] in ("CONFIRMED", "FAILED")
            ]
            return results[-1] if results else None

        return self.wait(final, f"payout {payout_id}")

    def intraday(self, bank_balance: Decimal) -> dict:
        self.bank.balances[AED_ACCOUNT] = bank_balance
        status, answer = self.api("POST", f"/api/v1/reconciliation/intraday/{AED_ACCOUNT}")
        if status != 200:
            raise DemoFailure(f"intraday check: {status} {answer}")
        return answer

    def breaker_commands_seen(self) -> int:
        commands = read_to_end(self.settings, catalogue.LEDGER_COMMANDS, timeout_s=5)
        return sum(c["kind"] == "BREAKER_CHANGE" for c in commands)

    def suspended(self) -> bool:
        status, body = self.api("GET", "/api/v1/reconciliation/health")
        return status == 200 and "asset:xAED" in body.get("payouts_suspended", [])
