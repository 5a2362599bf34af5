"""The Ethereum payout executor: payout commands in, signed transactions out, results back.

Owns sending ETH and ERC20 payouts and reporting them on payout-results: SUBMITTED (with
the transaction hash and nonce, published and acknowledged *before* the transaction is
sent), then CONFIRMED with the actual network fee (ETH payouts; an ERC20 payout's gas is
paid in ETH, not in the token, so it reports none) or FAILED with the reason.

Never pays twice: the nonce of a payout is recorded (with the transaction hash) before
sending, so after a crash the executor looks the payout's transaction up on the chain and
waits for it; only if the node never saw it does it sign again with the same nonce, and
one nonce can be mined once. Commands of payouts already final are skipped. While the
breaker is OPEN (globally or for the asset) nothing is submitted: the executor waits.
The signing key comes from configuration (a keystore file) and is never logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, Producer
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound

from connectors.ethereum import CHAIN
from tokengine.assets import Asset, AssetCatalogue
from topics import catalogue
from topics.codec import Codec, DecodeError
from topics.view import TopicView

log = logging.getLogger(__name__)

ERC20_TRANSFER_ABI = [
    {
        "name": "transfer",
        "type": "function",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
]
RECEIPT_TIMEOUT_S = 120.0
NATIVE_GAS = 21_000


@dataclass
class PayoutFacts:
    """What the executor reads from topics: each payout's newest result, breaker states."""

    results: dict[str, dict[str, Any]]
    breakers: dict[str, str]

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.PAYOUT_RESULTS:
            current = self.results.get(value["payout_id"])
            if current is None or current["status"] == "SUBMITTED":
                self.results[value["payout_id"]] = value
        elif topic == catalogue.BREAKER_STATE:
            self.breakers[value["scope"]] = value["state"]


class EthereumPayouts:
    def __init__(
        self,
        rpc_url: str,
        bootstrap: str,
        group_id: str,
        prefix: str,
        codec: Codec,
        producer: Producer,
        consumer: Consumer,
        assets: AssetCatalogue,
        private_key: bytes,
    ) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.prefix = prefix
        self.codec = codec
        self.producer = producer
        self.consumer = consumer
        self.assets = assets
        self.account = Account.from_key(private_key)
        self.facts = PayoutFacts({}, {})
        self.view = TopicView(
            bootstrap,
            prefix,
            codec,
            [catalogue.PAYOUT_RESULTS, catalogue.BREAKER_STATE],
            self.facts.fold,
            name=f"{group_id}-facts",
            partitions={catalogue.BREAKER_STATE: 1},
        )
        self.next_nonce: int | None = None
        self.stopping = threading.Event()
        self.sent = 0

    @property
    def address(self) -> str:
        return self.account.address

    def run(self) -> None:
        self.view.start()
        self.consumer.subscribe([self.prefix + catalogue.PAYOUT_COMMANDS])
        try:
            while not self.stopping.is_set():
                message = self.consumer.poll(0.2)
                if message is None or message.error():
                    continue
                try:
                    command = self.codec.decode(catalogue.PAYOUT_COMMANDS, message.value())
                except DecodeError as error:
                    log.warning("undecodable payout command: %s", error)
                    self.consumer.commit(message, asynchronous=False)
                    continue
                if command["chain"] == CHAIN:
                    self.execute(command)
                self.consumer.commit(message, asynchronous=False)
        finally:
            self.view.stop()
            self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()

    # -- one payout ----------------------------------------------------------------------

    def execute(self, command: dict[str, Any]) -> None:
        self.view.wait_caught_up()
        payout_id = command["payout_id"]
        asset = self.assets[command["asset"]]
        self.wait_while_breaker_open(asset)
        with self.view.lock:
            known = self.facts.results.get(payout_id)
        if known is not None and known["status"] in ("CONFIRMED", "FAILED"):
            return  # done before a restart: never again
        try:
            if known is not None and known.get("nonce") is not None:
                tx_hash, nonce = known["tx_hash"], known["nonce"]
                if not self.on_chain(tx_hash):  # it never reached the node: same nonce again
                    signed = self.sign(command, asset, nonce)
                    tx_hash = signed.hash.to_0x_hex()
                    self.report(command, "SUBMITTED", tx_hash=tx_hash, nonce=nonce)
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
            else:
                nonce = self.allocate_nonce()
                signed = self.sign(command, asset, nonce)
                tx_hash = signed.hash.to_0x_hex()
                self.report(command, "SUBMITTED", tx_hash=tx_hash, nonce=nonce)
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, RECEIPT_TIMEOUT_S)
        except (ValueError, OSError) as error:  # refused by the node: nothing was paid
            self.next_nonce = None  # ask the node again
            self.report(command, "FAILED", reason=f"rejected by the node: {error}")
            return
        self.sent += 1
        if receipt["status"] != 1:
            self.report(command, "FAILED", tx_hash=tx_hash, nonce=nonce, reason="reverted")
            return
        fee_wei = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        network_fee = Decimal(fee_wei).scaleb(-18) if not asset.contract else None
        self.report(command, "CONFIRMED", tx_hash=tx_hash, nonce=nonce, network_fee=network_fee)

    def wait_while_breaker_open(self, asset: Asset) -> None:
        while not self.stopping.is_set():
            with self.view.lock:
                states = (
                    self.facts.breakers.get("global"),
                    self.facts.breakers.get(f"asset:{asset.code}"),
                )
            if "OPEN" not in states:
                return
            self.consumer.pause(self.consumer.assignment())
            self.consumer.poll(0.5)  # keeps the group membership; paused: returns nothing
            self.consumer.resume(self.consumer.assignment())

    def allocate_nonce(self) -> int:
        pending = self.w3.eth.get_transaction_count(self.address, "pending")
        nonce = pending if self.next_nonce is None else max(pending, self.next_nonce)
        self.next_nonce = nonce + 1
        return nonce

    def on_chain(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False

    def sign(self, command: dict[str, Any], asset: Asset, nonce: int):
        """The payout's transaction for a nonce (one nonce can be mined once, whatever else)."""
        units = int(command["amount"].scaleb(asset.decimals))
        to = Web3.to_checksum_address(command["destination_address"])
        base = {
            "nonce": nonce,
            "chainId": self.w3.eth.chain_id,
            "gasPrice": self.w3.eth.gas_price * 2,
        }
        if asset.contract:
            token = self.w3.eth.contract(
                address=Web3.to_checksum_address(asset.contract), abi=ERC20_TRANSFER_ABI
            )
            transaction = token.functions.transfer(to, units).build_transaction(
                {**base, "gas": 100_000, "from": self.address}
            )
        else:
            transaction = {**base, "to": to, "value": units, "gas": NATIVE_GAS}
        return self.account.sign_transaction(transaction)

    def report(self, command: dict[str, Any], status: str, **fields: Any) -> None:
        result = {
            "payout_id": command["payout_id"],
            "account_id": command["account_id"],
            "status": status,
            "tx_hash": fields.get("tx_hash"),
            "network_fee": fields.get("network_fee"),
            "reason": fields.get("reason"),
            "reported_at": datetime.now(UTC),
            "nonce": fields.get("nonce"),
        }
        self.producer.produce(
            self.prefix + catalogue.PAYOUT_RESULTS,
            self.codec.encode(catalogue.PAYOUT_RESULTS, result),
            command["account_id"].encode(),
        )
        if self.producer.flush(30) != 0:
            raise OSError("payout result not acknowledged by the broker")
        with self.view.lock:
            self.facts.fold(catalogue.PAYOUT_RESULTS, result)
        log.info("payout %s: %s %s", command["payout_id"], status, fields.get("tx_hash") or "")
