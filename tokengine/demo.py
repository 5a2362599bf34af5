"""`tokengine demo`: one scripted scenario through the real pipeline, with a final report.

Starts what `up` starts (broker, Postgres, anvil, sink, connectors, a worker) plus a
simulated bank balance API, then walks through: assets and deposit addresses, on-chain
deposits credited at their security level, a fiat deposit (camt.054), a withdrawal with
its real network fee, a failed payout rolled back with its failure fee, a cross-chain and
an internal transfer, a load phase, reconciliation from Minor to Critical and back with an
operator reset, end of day (camt.053), and a final report. Exit code 0 only if every check
of the report holds.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from web3 import Web3

from connectors.bitcoin import BitcoinRpc
from connectors.simulated_bank import SimulatedBank
from connectors.solidity import deploy_token
from core.config import Settings
from core.reasons import Reason
from sinks.migrate import migrate
from tokengine.api_client import call
from tokengine.services import EmbeddedServices, embedded_btc_payout_key, free_port
from tokengine.up import ChildHandle, embedded_payout_keystore, get_json, start_child, start_worker
from topics import catalogue
from topics.admin import create_topics
from topics.breaker import breaker_record, publish_breaker_state
from topics.codec import make_codec
from topics.kafka import make_producer
from topics.tail import read_to_end

AED_ACCOUNT = "AE070331234567890123456"
USD_ACCOUNT = "GB33BUKB20201555555555"
STEP_TIMEOUT_S = 60.0
LEVELS = '["20:0", "50:1", "200:2", "500:3", "1000:4", "2000:5", "3000:6", "5000:8", "*:12"]'
console = Console(highlight=False, width=110)


BTC_ASSET = """
[assets.BTC]
unit = "BTC"
chain = "bitcoin"
network = "regtest"
segwit = false
decimals = 8
fee_fixed = "0.0001"
min_withdrawal = "0.0005"
rounding_tolerance = "0.00000001"
confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]
"""


class DemoFailure(RuntimeError):
    pass


def demo_assets(token_address: str) -> str:
    return (
        BTC_ASSET
        + f"""
[assets.ETH]
unit = "ETH"
chain = "ethereum"
decimals = 18
fee_fixed = "0.0005"
failure_fee = "0.0001"
min_withdrawal = "0.001"
rounding_tolerance = "0.000000000000000001"
confirmation_levels_usd = {LEVELS}

[assets.TOK]
unit = "USD"
chain = "ethereum"
token_standard = "erc20"
contract = "{token_address}"
decimals = 6
fee_fixed = "1"
failure_fee = "0.5"
min_withdrawal = "5"
rounding_tolerance = "0.000001"
confirmation_levels_usd = {LEVELS}

[assets.xUSD]
unit = "USD"
chain = "bank"
bank_account = "{USD_ACCOUNT}"
currency = "USD"
decimals = 2
fee_fixed = "0.50"
min_withdrawal = "10.00"
rounding_tolerance = "0.01"

[assets.xAED]
unit = "AED"
chain = "bank"
bank_account = "{AED_ACCOUNT}"
currency = "AED"
decimals = 2
fee_fixed = "1.00"
min_withdrawal = "10.00"
rounding_tolerance = "0.01"
"""
    )


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
    def __init__(self, settings: Settings, load_requests: int) -> None:
        self.base = settings
        self.load_requests = load_requests
        self.report = Report()
        self.step_number = 0
        self.children: list[ChildHandle] = []

    # -- plumbing ------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.step_number += 1
        console.print(f"\n[bold]{self.step_number}. {title}[/bold]")

    def api(self, method: str, path: str, body: Any = None, raw: bytes | None = None):
        return call(method, self.api_url + path, body, timeout_s=30, raw=raw)

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
        if self.producer.flush(30) != 0:
            raise DemoFailure(f"{topic}: not acknowledged")

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])

    # -- the run -------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        # anvil automines: the demo mines on purpose; bitcoind mines only when asked
        services = EmbeddedServices(self.base, want_btc=True)
        try:
            self.start(services)
            self.configure()
            self.chain_deposits()
            self.flows()
            self.load()
            self.reconciliation()
            self.end_of_day()
            self.final_report()
        except DemoFailure as failure:
            self.report.check("scenario ran to the end", False, str(failure))
            letters = read_to_end(self.settings, catalogue.DEAD_LETTERS, timeout_s=5)
            for letter in letters[-5:]:
                console.print(f"   dead letter: {letter['reason']}: {letter['error'][:300]}")
        finally:
            for child in self.children:
                child.process.stop()
            if hasattr(self, "worker"):
                self.worker.stop()
            if hasattr(self, "bank"):
                self.bank.stop()
            services.stop()
        seconds = time.monotonic() - started
        verdict = "[green]all checks hold[/green]" if self.report.ok else "[red]CHECKS FAILED[/red]"
        console.print(f"\n{verdict} ({len(self.report.checks)} checks, {seconds:.0f} s)")
        return 0 if self.report.ok else 1

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
        self.btc = BitcoinRpc(settings.btc_rpc) if settings.btc_rpc else None
        self.token = deploy_token(self.w3, self.w3.eth.accounts[0], "TOK", 6, 10**15)
        assets_file = data_dir / "assets.toml"
        assets_file.write_text(demo_assets(self.token.address))
        self.bank = SimulatedBank({AED_ACCOUNT: "AED", USD_ACCOUNT: "USD"}).start()
        settings = settings.with_overrides(
            assets_file=assets_file,
            bank_api=self.bank.url,
            eth_start_block=self.w3.eth.block_number,
            intraday_interval_s=3600.0,
        )
        create_topics(settings.kafka, settings.topic_prefix)
        migrate(settings.database_url)
        settings = embedded_btc_payout_key(embedded_payout_keystore(settings))
        self.settings = settings
        self.codec = make_codec(settings.schema_registry, settings.topic_prefix)
        self.producer = make_producer(settings.kafka)
        self.children = [
            ChildHandle("sink", start_child(settings, "sink")),
            ChildHandle("connectors", start_child(settings, "connectors")),
        ]
        port = free_port()
        self.worker = start_worker(settings, 0, port)
        self.api_url = f"http://127.0.0.1:{port}"
        self.wait(lambda: get_json(self.api_url + "/api/v1/health")[0] == 200, "the worker", 90)
        console.print(
            f"   kafka={settings.kafka} postgres={settings.database_url} eth={settings.eth_rpc} "
            f"btc={settings.btc_rpc or 'none'}"
            f"\n   api={self.api_url} data={data_dir}"
        )

    def configure(self) -> None:
        self.step("Operator configures assets; users get deposit addresses")
        btc = "BTC (regtest bitcoind: Bitcoin SV node behaviour over the Bitcoin Core RPC)"
        console.print(
            f"   assets: ETH, TOK (ERC20 at {self.token.address}, compiled offline with solc), "
            f"xUSD ({USD_ACCOUNT}), xAED ({AED_ACCOUNT}), "
            + (btc if self.btc else "BTC: no regtest node installed")
        )
        self.addresses = {}
        now = datetime.now(UTC)
        for user in ("alice", "bob", "carol"):
            address = Account.create().address
            self.addresses[user] = address
            binding = {"chain": "ethereum", "address": address, "account_id": user, "bound_at": now}
            self.produce(catalogue.ADDRESS_BINDINGS, f"ethereum:{address}", binding)
            reference = f"TKE-{user.upper()}"
            bank = {"chain": "bank", "address": reference, "account_id": user, "bound_at": now}
            self.produce(catalogue.ADDRESS_BINDINGS, f"bank:{reference}", bank)
            console.print(f"   {user}: {address} (bank reference {reference})")
        for asset, usd in (("ETH", "3000"), ("TOK", "1"), ("BTC", "50000")):
            price = {"asset": asset, "usd_price": Decimal(usd), "as_of": now}
            self.produce(catalogue.PRICES, asset, price)
        if self.btc:
            self.btc("generatetoaddress", 101, self.btc("getnewaddress"))  # spendable coins
            self.btc_address = self.btc("getnewaddress")
            binding = {
                "chain": "bitcoin",
                "address": self.btc_address,
                "account_id": "dave",
                "bound_at": now,
            }
            self.produce(catalogue.ADDRESS_BINDINGS, f"bitcoin:{self.btc_address}", binding)
            console.print(f"   dave: {self.btc_address} (bitcoin)")
        keystore = json.loads(self.settings.eth_keystore.read_text())
        key = bytes(Account.decrypt(keystore, self.settings.eth_keystore_password))
        self.hot_wallet = Account.from_key(key).address
        self.token.functions.transfer(self.hot_wallet, 100_000 * 10**6).transact(
            {"from": self.w3.eth.accounts[0]}
        )
        console.print("   prices: ETH 3000 USD, TOK 1 USD; the hot wallet holds TOK for payouts")

    def chain_deposits(self) -> None:
        self.step("On-chain deposits, each credited at its security level")
        sender = self.w3.eth.accounts[1]
        deposits = [
            ("alice", "ETH", Decimal("0.005")),  # 15 USD
            ("bob", "ETH", Decimal("0.1")),  # 300 USD
            ("carol", "ETH", Decimal("2")),  # 6000 USD
            ("alice", "TOK", Decimal("500")),  # 500 USD
        ]
        for user, asset, amount in deposits:
            before = self.balance(user, asset)
            if asset == "ETH":
                tx = self.w3.eth.send_transaction(
                    {"from": sender, "to": self.addresses[user], "value": int(amount.scaleb(18))}
                )
            else:
                tx = self.token.functions.transfer(
                    self.addresses[user], int(amount.scaleb(6))
                ).transact({"from": self.w3.eth.accounts[0]})
            self.wait(lambda h=tx: self.observed(h.to_0x_hex()), "the watcher to see it")
            observation = self.observed(tx.to_0x_hex())
            required = observation["confirmations_required"]
            credited_early = False
            while (current := self.observed(tx.to_0x_hex()))["status"] != "CONFIRMED":
                credited_early |= self.balance(user, asset) != before
                self.mine(1)
                self.wait(  # the watcher republishes at each new confirmation
                    lambda h=tx, c=current: (
                        self.observed(h.to_0x_hex())["confirmations"] > c["confirmations"]
                    ),
                    "the next confirmation",
                )
            final = self.observed(tx.to_0x_hex())
            self.wait(lambda u=user, a=asset, b=before: self.balance(u, a) > b, "the credit")
            self.report.check(
                f"{user} {amount} {asset} ({amount * (3000 if asset == 'ETH' else 1)} USD)",
                not credited_early and self.balance(user, asset) - before == amount,
                f"level {required} confirmations, credited at {final['confirmations']}",
            )

        if self.btc:
            self.btc_deposit()

    def btc_deposit(self) -> None:
        """0.015 BTC = 750 USD: level "< 1000: 2"; the demo mines each block."""
        txid = self.btc("sendtoaddress", self.btc_address, 0.015)
        miner = self.btc("getnewaddress")
        credited_early = False
        confirmations = 0
        while True:
            self.btc("generatetoaddress", 1, miner)
            confirmations += 1
            observed = self.wait(
                lambda c=confirmations: (
                    (o := self.observed(txid)) and o["confirmations"] >= c and o
                ),
                "the bitcoin watcher",
            )
            if observed["status"] == "CONFIRMED":
                break
            credited_early |= self.balance("dave", "BTC") != 0
        self.wait(lambda: self.balance("dave", "BTC") > 0, "the BTC credit")
        self.report.check(
            "dave 0.015 BTC (750 USD)",
            not credited_early and self.balance("dave", "BTC") == Decimal("0.015"),
            f"level {observed['confirmations_required']} confirmations, "
            f"credited at {observed['confirmations']}",
        )

    def btc_withdrawal(self) -> None:
        """dave pays 0.005 BTC out: signed by the executor, sent, mined by the demo."""
        destination = self.btc("getnewaddress")
        self.withdraw("demo-w5", "dave", "BTC", "0.005", destination)

        def submitted() -> bool:
            return any(
                r["payout_id"] == "po:dave:demo-w5"
                for r in read_to_end(self.settings, catalogue.PAYOUT_RESULTS, timeout_s=5)
            )

        self.wait(submitted, "the BTC payout sent")
        self.btc("generatetoaddress", 1, self.btc("getnewaddress"))
        done = self.result("demo-w5")
        paid = self.payout_result("po:dave:demo-w5")
        received = self.btc("getreceivedbyaddress", destination, 1)
        self.report.check(
            "dave withdraws 0.005 BTC (fee 0.0001)",
            done["status"] == "COMPLETED"
            and received == Decimal("0.005")
            and self.balance("dave", "BTC") == Decimal("0.0099"),
            f"signed and sent on regtest, network fee {paid['network_fee']} BTC to the operator",
        )

    def observed(self, tx_hash: str) -> dict | None:
        found = [
            o
            for o in read_to_end(self.settings, catalogue.CHAIN_OBSERVATIONS, timeout_s=5)
            if o["tx_hash"].lower() == tx_hash.lower()
        ]
        return found[-1] if found else None

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

    def flows(self) -> None:
        self.step("Fiat deposit, withdrawals, a failed payout, cross-chain and internal transfers")
        answer = self.camt054(
            "DEMO-054-1", AED_ACCOUNT, "CRDT", "10000.00", "BNK-AE-1", "TKE-ALICE"
        )
        self.report.check(
            "camt.054 fiat deposit: alice credited 10000.00 xAED",
            self.balance("alice", "xAED") == Decimal("10000") and answer["threshold_level"] == "OK",
            f"tier 1: bank {answer['bank_balance']} = ledger {answer['ledger_balance']}",
        )
        destination = Account.create().address
        self.withdraw("demo-w1", "bob", "ETH", "0.05", destination)
        done = self.result("demo-w1")
        paid = self.payout_result("po:bob:demo-w1")
        chain_ok = self.w3.eth.get_balance(destination) == 5 * 10**16
        self.report.check(
            "bob withdraws 0.05 ETH (fee 0.0005)",
            done["status"] == "COMPLETED"
            and chain_ok
            and self.balance("bob", "ETH") == Decimal("0.0495"),
            f"paid on chain, network fee {paid['network_fee']} ETH booked to the operator",
        )
        if self.btc:
            self.btc_withdrawal()
        self.withdraw("demo-w2", "carol", "ETH", "0.5", self.token.address)  # refuses ETH
        failed = self.result("demo-w2")
        self.report.check(
            "carol's payout to a contract that refuses ETH fails and is rolled back",
            failed["status"] == "FAILED" and self.balance("carol", "ETH") == Decimal("1.9999"),
            "reservation released, failure fee 0.0001 ETH charged",
        )
        tok_destination = Account.create().address
        transfer = {
            "request_id": "demo-x1",
            "account_id": "bob",
            "kind": "CROSS_CHAIN",
            "asset": "xUSD",
            "amount": "250.00",
            "destination_asset": "TOK",
            "destination_address": tok_destination,
            "deposit_tx_hash": "BNK-US-1",
            "deposit_output_index": 0,
        }
        status, answer = self.api("POST", "/api/v1/transfers", transfer)
        if status != 202:
            raise DemoFailure(f"cross-chain transfer: {status} {answer}")
        self.result("demo-x1", ("ACCEPTED",))
        self.camt054("DEMO-054-2", USD_ACCOUNT, "CRDT", "250.00", "BNK-US-1", "TKE-BOB")
        crossed = self.result("demo-x1")
        received = self.token.functions.balanceOf(tok_destination).call()
        self.report.check(
            "cross-chain: 250.00 USD in at the bank, 249 TOK out on Ethereum (fee 1)",
            crossed["status"] == "COMPLETED" and received == 249 * 10**6,
            f"request {crossed['status']}",
        )
        internal = {
            "request_id": "demo-t1",
            "account_id": "alice",
            "kind": "INTERNAL",
            "asset": "xAED",
            "amount": "100.00",
            "to_account_id": "bob",
        }
        self.api("POST", "/api/v1/transfers", internal)
        self.result("demo-t1")
        self.wait(lambda: self.balance("bob", "xAED") == Decimal("100"), "bob's credit")
        self.report.check(
            "internal transfer alice -> bob 100.00 xAED",
            self.balance("alice", "xAED") == Decimal("9900"),
            "debit and credit on two partitions through the clearing account",
        )

    def load(self) -> None:
        self.step(f"Load: {self.load_requests} mixed requests")
        created = datetime.now(UTC)
        messages = []
        for n in range(self.load_requests):
            kind = n % 3
            if kind == 0:
                topic, value = (
                    catalogue.TRANSFER_REQUESTS,
                    {
                        "request_id": f"load-{n}",
                        "account_id": "alice",
                        "kind": "INTERNAL",
                        "asset": "xAED",
                        "amount": Decimal("0.01"),
                        "to_account_id": f"user{n % 97}",
                        "destination_asset": None,
                        "destination_address": None,
                        "deposit_tx_hash": None,
                        "deposit_output_index": None,
                        "created_at": created,
                    },
                )
            elif kind == 1:  # refused: the account holds nothing
                topic, value = (
                    catalogue.WITHDRAWAL_REQUESTS,
                    {
                        "request_id": f"load-{n}",
                        "account_id": f"user{n % 89}-empty",
                        "asset": "ETH",
                        "amount": Decimal("0.01"),
                        "destination_address": self.addresses["alice"],
                        "created_at": created,
                    },
                )
            else:  # announced deposits, waiting for their transfer
                topic, value = (
                    catalogue.DEPOSIT_REQUESTS,
                    {
                        "request_id": f"load-{n}",
                        "account_id": f"user{n % 83}",
                        "asset": "ETH",
                        "amount": Decimal("0.01"),
                        "chain": "ethereum",
                        "tx_hash": f"0x{n:064x}",
                        "output_index": 0,
                        "created_at": created,
                    },
                )
            messages.append((topic, value["account_id"], self.codec.encode(topic, value)))
        started = time.monotonic()
        for topic, key, value in messages:
            self.producer.produce(self.settings.topic_prefix + topic, value, key.encode())
            self.producer.poll(0)
        self.producer.flush(60)
        decided: set[str] = set()
        with Progress(
            TextColumn("   results"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("load", total=self.load_requests, rate="")
            deadline = time.monotonic() + 300
            while len(decided) < self.load_requests and time.monotonic() < deadline:
                for result in read_to_end(self.settings, catalogue.REQUEST_RESULTS, timeout_s=10):
                    if result["request_id"].startswith("load-"):
                        decided.add(result["request_id"])
                rate = len(decided) / (time.monotonic() - started)
                progress.update(task, completed=len(decided), rate=f"{rate:.0f} requests/s")
                time.sleep(0.5)
        seconds = time.monotonic() - started
        self.report.check(
            f"{self.load_requests} requests decided",
            len(decided) == self.load_requests,
            f"{self.load_requests / seconds:.0f} requests/s end to end (one worker)",
        )

    def intraday(self, bank_balance: Decimal) -> dict:
        self.bank.balances[AED_ACCOUNT] = bank_balance
        status, answer = self.api("POST", f"/api/v1/reconciliation/intraday/{AED_ACCOUNT}")
        if status != 200:
            raise DemoFailure(f"intraday check: {status} {answer}")
        return answer

    def breaker_commands_seen(self) -> int:
        commands = read_to_end(self.settings, catalogue.LEDGER_COMMANDS, timeout_s=5)
        return sum(c["kind"] == "BREAKER_CHANGE" for c in commands)

    def reconciliation(self) -> None:
        self.step("Reconciliation: a drifting bank balance, the breaker, an operator reset")
        ledger = Decimal(self.intraday(Decimal("10000.00"))["ledger_balance"])
        seen = self.breaker_commands_seen()
        levels = []
        for label, bank in (
            ("Minor", ledger * Decimal("1.0003")),
            ("Significant", ledger * Decimal("1.003")),
        ):
            answer = self.intraday(bank.quantize(Decimal("0.01")))
            levels.append(answer["threshold_level"])
            console.print(
                f"   {label}: bank {answer['bank_balance']} vs ledger {answer['ledger_balance']} "
                f"({answer['deviation_pct']}%) -> {answer['threshold_level']}, "
                f"{answer['action_taken']}"
            )
        self.wait(self.suspended, "the suspension")
        # every ledger partition has the change before the next request (one per partition)
        self.wait(lambda: self.breaker_commands_seen() >= seen + 8, "the suspension in the ledger")
        # nothing pays xAED out (no bank payout connector): a withdrawal is refused at once
        body = {
            "request_id": "demo-w3",
            "account_id": "alice",
            "asset": "xAED",
            "amount": "50.00",
            "destination_address": "GB82WEST12345698765432",
        }
        status, refused = self.api("POST", "/api/v1/withdrawals", body)
        self.report.check(
            "Minor logged, Significant suspends xAED in every ledger partition",
            levels == ["MINOR", "SIGNIFICANT"]
            and (status, refused.get("error")) == (400, Reason.PAYOUTS_UNAVAILABLE),
            f"health lists asset:xAED; a xAED withdrawal is refused: {refused.get('error')}",
        )
        before = self.breaker_commands_seen()
        critical = self.intraday(Decimal("9000.00"))  # the ledger exceeds the bank
        self.wait(lambda: self.api("GET", "/api/v1/reconciliation/health")[0] == 503, "503")
        self.wait(lambda: self.breaker_commands_seen() >= before + 8, "the breaker in the ledger")
        held_to = Account.create().address
        self.withdraw("demo-w4", "bob", "ETH", "0.01", held_to)
        held = self.result("demo-w4", ("ACCEPTED",))
        self.report.check(
            "Critical trips the breaker: health 503, a new ETH payout is held",
            critical["threshold_level"] == "CRITICAL"
            and held["reason"] == Reason.HELD_BY_CIRCUIT_BREAKER,
            f"{critical['action_taken']}; withdrawal {held['status']} ({held['reason']})",
        )
        self.intraday(ledger)  # the bank's figure is corrected
        record = breaker_record("global", "CLOSED", "OK", "demo: bank confirmed", "operator:demo")
        publish_breaker_state(
            make_producer(self.settings.kafka), self.settings.topic_prefix, self.codec, record
        )
        released = self.result("demo-w4")
        health = self.wait(
            lambda: (h := self.api("GET", "/api/v1/reconciliation/health"))[0] == 200 and h[1],
            "health 200",
        )
        self.report.check(
            "operator reset: the held payout completes, health is back",
            released["status"] == "COMPLETED" and self.w3.eth.get_balance(held_to) == 10**16,
            f"health {health['status']}",
        )

    def suspended(self) -> bool:
        status, body = self.api("GET", "/api/v1/reconciliation/health")
        return status == 200 and "asset:xAED" in body.get("payouts_suspended", [])

    def end_of_day(self) -> None:
        self.step("End of day: camt.053 statement, snapshot, matching, safeguarding report")
        ledger = Decimal(self.intraday(Decimal("10000.00"))["ledger_balance"])
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
        status, answer = self.api("POST", "/api/v1/reconciliation/eod", raw=statement)
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
        self.report.check(
            "statement matched: the deposit matched, the bank's interest credit found unmatched",
            snapshot["entries_matched"] == 1
            and "MISSING_TXN" in kinds
            and Path(snapshot["report_path"]).exists(),
            f"discrepancies: {', '.join(kinds)}",
        )

    def final_report(self) -> None:
        from sinks.verify import verify_chains, verify_postgres
        from streams.ledger_watch import violations

        self.step("Final report")
        entries = read_to_end(self.settings, catalogue.LEDGER_ENTRIES)
        updates = read_to_end(self.settings, catalogue.BALANCE_UPDATES)
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
        self.report.check(
            "invariants hold (balanced, none negative, assets = liabilities)",
            not found,
            "; ".join(found[:2]),
        )
        import psycopg

        url = self.settings.database_url

        def rows(table: str) -> int:
            with psycopg.connect(url) as conn:
                return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        self.wait(lambda: rows("ledger_transactions") == len(seen), "the sink", 60)
        self.wait(lambda: rows("accounts") == len(newest), "the sink's balances", 60)
        from_topic = verify_chains("topic", entries)
        from_postgres = verify_postgres(url)
        self.report.check("verify-ledger (topic)", from_topic.ok, from_topic.summary())
        self.report.check("verify-ledger (postgres)", from_postgres.ok, from_postgres.summary())
        self.report.check(
            "Postgres rows equal the topics",
            rows("ledger_transactions") == len(seen) and rows("accounts") == len(newest),
            f"{len(seen)} transactions, {len(newest)} balances",
        )
        console.print(
            "\n   where to look next: `tokengine tail <topic>` (topics: "
            f"{self.settings.topic_prefix}*), {self.api_url}/metrics, "
            f"{self.api_url}/api/v1/reconciliation/summary, Postgres tables ledger_transactions, "
            "accounts, emi_accounts, audit_log"
        )


def camt053(
    message_id: str,
    account: str,
    day: str,
    opening: Decimal,
    closing: Decimal,
    entries: list[tuple[str, str | None, str, str]],
) -> bytes:
    """A camt.053.001.08 statement (what a bank sends at end of day)."""
    booked = "".join(
        f"""<Ntry><Amt Ccy="AED">{amount}</Amt><CdtDbtInd>{cd}</CdtDbtInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
<AcctSvcrRef>{ref}</AcctSvcrRef><BkTxCd><Prtry><Cd>DEMO</Cd></Prtry></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>{e2e or "NOTPROVIDED"}</EndToEndId></Refs></TxDtls>
</NtryDtls></Ntry>"""
        for ref, e2e, cd, amount in entries
    )

    def balance(code: str, value: Decimal) -> str:
        cd = "CRDT" if value >= 0 else "DBIT"
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="AED">'
            f"{abs(value):.2f}</Amt><CdtDbtInd>{cd}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>{day}T23:59:00</CreDtTm></GrpHdr>
<Stmt><Id>{message_id}-1</Id><CreDtTm>{day}T23:59:00</CreDtTm>
<Acct><Id><IBAN>{account}</IBAN></Id><Ccy>AED</Ccy></Acct>
{balance("OPBD", opening)}{balance("CLBD", closing)}{booked}
</Stmt></BkToCstmrStmt></Document>""".encode()


def run_demo(settings: Settings, load_requests: int) -> int:
    return Demo(settings, load_requests).run()
