"""The Ethereum payout executor: ETH and ERC20 payouts signed and sent, results back.

Owns paying a payout on Ethereum: SUBMITTED (with the transaction hash and nonce) is
reported and acknowledged *before* the transaction is sent, then CONFIRMED with the actual
network fee, always in ETH (an ERC20 payout's gas is paid in ETH, not in the token: its
result names ETH as the fee's asset) or FAILED with the reason (a reverted transaction
with the gas it burnt). The loop, the breaker and the reports are
`connectors.payout_executor`'s.

Never pays twice: a payout's nonce, hash and signed bytes are recorded (SUBMITTED) before
they are sent, so after a crash the executor looks the transaction up and, if the node
never saw it, sends the very same bytes again: a payout that recorded its bytes is never
signed twice, and one nonce can be mined once. FAILED is reported only when nothing can
have been paid: the transaction could not be built, it reverted, it was refused before it
ever left the executor, or another transaction took its nonce. A node that cannot be
reached, or refuses bytes it may have had before, concludes nothing: the payout is taken
up again after a wait. Recorded results that name no transaction are ignored
(`accepts_result`). The signing key comes from configuration (a keystore file) and is
never logged.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted, Web3RPCError

from connectors.ethereum import CHAIN, NATIVE_GAS, transaction_known
from connectors.payout_executor import ExecutorWiring, PayoutExecutor
from core.assets import Asset
from core.reasons import Reason

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
RPC_RETRY_S = 2.0
TX_HASH = re.compile(r"0x[0-9a-f]{64}")
NEVER_MINED = object()  # a payout transaction whose nonce another transaction took


class NotConcluded(Exception):
    """Nothing can be concluded about a payout now (asked again after a wait)."""


UNREACHABLE = (OSError, NotConcluded)  # requests' errors (refused, timeouts) are OSErrors


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

    def accepts_result(self, result: dict[str, Any]) -> bool:
        """A SUBMITTED result must name a transaction (hash, nonce) and, when it records the
        signed bytes, bytes of that hash: a restart sends those very bytes again."""
        if result["status"] != "SUBMITTED":
            return True
        tx_hash, nonce, raw = (
            result.get("tx_hash"),
            result.get("nonce"),
            result.get("raw_transaction"),
        )
        if not (isinstance(tx_hash, str) and TX_HASH.fullmatch(tx_hash)):
            return False
        if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
            return False
        if raw is None:
            return True
        try:
            return Web3.keccak(hexstr=raw).to_0x_hex() == tx_hash
        except (ValueError, TypeError):
            return False

    # -- one payout ----------------------------------------------------------------------

    def pay(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None) -> bool:
        """Pay once; while the node cannot be reached, or refuses what it may have had
        before, nothing is concluded (asked again after a wait)."""
        while not self.stopping.is_set():
            try:
                return self.pay_once(command, asset, known)
            except UNREACHABLE as error:
                log.warning("payout %s: %s; trying again", command["payout_id"], error)
                self.next_nonce = None  # ask the node again
                self.stopping.wait(RPC_RETRY_S)
                with self.view.lock:
                    known = self.facts.results.get(command["payout_id"])
        return False

    def pay_once(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None):
        if known is not None and known.get("raw_transaction"):
            nonce, tx_hash, raw = known["nonce"], known["tx_hash"], known["raw_transaction"]
            first = False  # sent before a restart, maybe: only these bytes, ever
        else:
            resigned = known is not None and known.get("nonce") is not None
            nonce = known["nonce"] if resigned else self.allocate_nonce()
            try:
                signed = self.sign(command, asset, nonce)
            except (ValueError, TypeError) as error:  # cannot be built: nothing was sent
                self.next_nonce = None
                self.report(command, "FAILED", reason=Reason.NOT_PAYABLE, detail=error)
                return True
            tx_hash, raw = signed.hash.to_0x_hex(), signed.raw_transaction.to_0x_hex()
            first = not resigned
            self.report(command, "SUBMITTED", tx_hash=tx_hash, nonce=nonce, raw_transaction=raw)
        if not self.on_chain(tx_hash) and not self.broadcast(command, raw, tx_hash, nonce, first):
            return True  # refused, reported FAILED: nothing was paid
        receipt = self.wait_for_receipt(command, raw, tx_hash, nonce)
        if receipt is NEVER_MINED:
            return True  # reported FAILED
        if receipt is None:
            return False  # stopping: the next run finds the transaction by what it recorded
        gas = self.gas_paid(asset, receipt)
        if receipt["status"] != 1:
            self.report(
                command, "FAILED", tx_hash=tx_hash, nonce=nonce, reason=Reason.REVERTED, **gas
            )
            return True
        self.report(command, "CONFIRMED", tx_hash=tx_hash, nonce=nonce, **gas)
        return True

    def gas_paid(self, asset: Asset, receipt) -> dict[str, Any]:
        """The fee a mined transaction paid, in ETH, and the asset it is in when that is
        not the payout's (an ERC20 payout)."""
        fee = Decimal(receipt["gasUsed"] * receipt["effectiveGasPrice"]).scaleb(-18)
        native = self.assets.native(self.chain)
        if asset.is_native or native is None:
            return {"network_fee": fee if asset.is_native else None}
        return {"network_fee": fee, "network_fee_asset": native.code}

    def broadcast(self, command, raw: str, tx_hash: str, nonce: int, first: bool) -> bool:
        """Send the signed bytes; False once FAILED is reported (only when nothing can have
        been paid: bytes that never left this executor, or a nonce another transaction
        took); NotConcluded when the node refuses bytes it may have had before."""
        try:
            self.w3.eth.send_raw_transaction(raw)
            self.sent += 1
            return True
        except Web3RPCError as error:  # the node answered no
            if self.on_chain(tx_hash):
                return True  # it had it already
            if self.nonce_taken(nonce):  # by another transaction: this one can never be mined
                reason = Reason.NONCE_TAKEN
            elif first:
                reason = Reason.REJECTED_BY_NODE
            else:
                log.critical(
                    "payout %s: the node refuses its transaction (%s)", command["payout_id"], error
                )
                raise NotConcluded(
                    f"the node refuses a transaction it may have had: {error}"
                ) from None
            self.next_nonce = None  # the nonce stays free for the next payout
            self.report(
                command, "FAILED", tx_hash=tx_hash, nonce=nonce, reason=reason, detail=error
            )
            return False

    def nonce_taken(self, nonce: int) -> bool:
        """Whether a mined transaction of the hot wallet has this nonce."""
        return self.w3.eth.get_transaction_count(self.address, "latest") > nonce

    def wait_for_receipt(self, command, raw: str, tx_hash: str, nonce: int) -> Any:
        """The mined receipt; None when stopping first; NEVER_MINED once FAILED is reported
        because another transaction took the nonce. A transaction the node dropped is sent
        again (the same bytes)."""
        while not self.stopping.is_set():
            try:
                return self.w3.eth.wait_for_transaction_receipt(tx_hash, RECEIPT_POLL_S)
            except TimeExhausted:
                log.warning("payout transaction %s not mined yet; still waiting", tx_hash)
            if self.on_chain(tx_hash):
                continue
            if self.nonce_taken(nonce):  # by another transaction: this one can never be mined
                self.report(
                    command, "FAILED", tx_hash=tx_hash, nonce=nonce, reason=Reason.NONCE_TAKEN
                )
                return NEVER_MINED
            try:
                self.w3.eth.send_raw_transaction(raw)
            except Web3RPCError as error:
                log.error("payout transaction %s not accepted again: %s", tx_hash, error)
        return None

    def allocate_nonce(self) -> int:
        pending = self.w3.eth.get_transaction_count(self.address, "pending")
        nonce = pending if self.next_nonce is None else max(pending, self.next_nonce)
        self.next_nonce = nonce + 1
        return nonce

    def on_chain(self, tx_hash: str) -> bool:
        return transaction_known(self.w3, tx_hash)

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
