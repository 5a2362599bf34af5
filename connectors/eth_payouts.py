"""The Ethereum payout executor: ETH and ERC20 payouts signed and sent, results back.

Owns paying a payout on Ethereum: SUBMITTED (with the transaction hash and nonce) is
reported and acknowledged *before* the transaction is sent, then CONFIRMED with the actual
network fee (ETH payouts; an ERC20 payout's gas is paid in ETH, not in the token, so it
reports none) or FAILED with the reason. The loop, the breaker and the reports are
`connectors.payout_executor`'s.

Never pays twice: the nonce of a payout is recorded (with the transaction hash) before
sending, so after a crash the executor looks the payout's transaction up on the chain and
waits for it; only if the node never saw it does it sign again with the same nonce, and
one nonce can be mined once. The signing key comes from configuration (a keystore file)
and is never logged.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound

from connectors.ethereum import CHAIN
from connectors.payout_executor import ExecutorWiring, PayoutExecutor
from tokengine.assets import Asset

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
RECEIPT_POLL_S = 30.0
NATIVE_GAS = 21_000


class EthereumPayouts(PayoutExecutor):
    chain = CHAIN

    def __init__(self, wiring: ExecutorWiring, rpc_url: str, private_key: bytes) -> None:
        super().__init__(wiring)
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.account = Account.from_key(private_key)
        self.next_nonce: int | None = None

    @property
    def address(self) -> str:
        return self.account.address

    # -- one payout ----------------------------------------------------------------------

    def pay(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None) -> bool:
        try:
            if known is not None and known.get("nonce") is not None:
                tx_hash, nonce = known["tx_hash"], known["nonce"]
                if not self.on_chain(tx_hash):  # it never reached the node: same nonce again
                    signed = self.sign(command, asset, nonce)
                    tx_hash = signed.hash.to_0x_hex()
                    self.report(command, "SUBMITTED", tx_hash=tx_hash, nonce=nonce)
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                    self.sent += 1
            else:
                nonce = self.allocate_nonce()
                signed = self.sign(command, asset, nonce)
                tx_hash = signed.hash.to_0x_hex()
                self.report(command, "SUBMITTED", tx_hash=tx_hash, nonce=nonce)
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
                self.sent += 1
            receipt = self.wait_for_receipt(tx_hash)
        except (ValueError, OSError) as error:  # refused by the node: nothing was paid
            self.next_nonce = None  # ask the node again
            self.report(command, "FAILED", reason=f"rejected by the node: {error}")
            return True
        if receipt is None:
            return False  # stopping: the next run finds the transaction by its recorded nonce
        if receipt["status"] != 1:
            self.report(command, "FAILED", tx_hash=tx_hash, nonce=nonce, reason="reverted")
            return True
        fee_wei = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        network_fee = Decimal(fee_wei).scaleb(-18) if not asset.contract else None
        self.report(command, "CONFIRMED", tx_hash=tx_hash, nonce=nonce, network_fee=network_fee)
        return True

    def wait_for_receipt(self, tx_hash: str) -> Any:
        """The mined receipt; None when stopping first (a slow chain is waited for)."""
        while not self.stopping.is_set():
            try:
                return self.w3.eth.wait_for_transaction_receipt(tx_hash, RECEIPT_POLL_S)
            except TimeExhausted:
                log.warning("payout transaction %s not mined yet; still waiting", tx_hash)
        return None

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
