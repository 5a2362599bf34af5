"""The Ethereum watcher: ETH and ERC20 transfers to deposit addresses, as observations.

Owns reading Ethereum with `web3`: native transfers in each block's transactions and
ERC20 `Transfer` logs of the configured contracts (assets with a `contract`), to addresses
bound to accounts (address-bindings, chain `ethereum`), and to a hot wallet from anyone
but an operator wallet (the treasury's: the operator's capital). Deposit ids are (chain,
tx hash, log index; 0 for a native transfer). Outflows: every transaction an operator wallet sent
(its value if it succeeded, plus the gas it paid, in ETH) and every ERC20 `Transfer` out of
one (summed per transaction and token). Holdings: `eth_getBalance` and ERC20 `balanceOf` of
every operator wallet at the block, in batched JSON-RPC calls. Position, confirmations,
security levels, reorgs and publishing are `connectors.chain_watcher`'s.
"""

from __future__ import annotations

from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from connectors.chain_watcher import ChainWatcher, WatcherWiring
from connectors.watcher_state import Tracked

CHAIN = "ethereum"
BALANCE_OF = "0x70a08231"  # balanceOf(address)
BATCH = 500  # calls per JSON-RPC batch
NATIVE_GAS = 21_000  # the gas of a plain ETH transfer to an address with no code
TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix(
    "0x"
)


def batch_quantities(w3: Web3, calls: list[tuple[str, list]], number: int) -> list[int]:
    """The answers of balance calls at block `number`, as integers, sent BATCH at a time;
    OSError when the node refuses any (nothing is concluded from half an answer)."""
    quantities = []
    for start in range(0, len(calls), BATCH):
        answers = w3.provider.make_batch_request(calls[start : start + BATCH])
        if not isinstance(answers, list):  # the node refused the batch as a whole
            raise OSError(f"balances at block {number}: {answers.get('error')}")
        for answer in answers:
            if "error" in answer or "result" not in answer:
                raise OSError(f"balance at block {number}: {answer.get('error')}")
            result = answer["result"] or "0x"  # "0x": no contract there (holds nothing)
            quantities.append(int(result, 16) if result != "0x" else 0)
    return quantities


def transaction_known(w3: Web3, tx_hash: str) -> bool:
    """Whether the node has the transaction (mined or pending)."""
    try:
        w3.eth.get_transaction(tx_hash)
        return True
    except TransactionNotFound:
        return False


class EthereumWatcher(ChainWatcher):
    chain = CHAIN

    def __init__(self, wiring: WatcherWiring, rpc_url: str) -> None:
        super().__init__(wiring)
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self.native = next((a for a in self.assets.values() if a.is_native), None)
        self.tokens = {
            a.contract.lower(): a
            for a in self.assets.values()
            if a.token_standard == "erc20" and a.contract
        }

    @staticmethod
    def normalize_address(address: str) -> str:
        return address.lower()

    def head(self) -> int:
        return self.w3.eth.block_number

    def block_hash(self, number: int) -> str | None:
        try:
            return self.w3.eth.get_block(number)["hash"].to_0x_hex()
        except BlockNotFound:  # the chain got shorter
            return None

    def still_included(self, tracked: Tracked) -> bool:
        try:
            receipt = self.w3.eth.get_transaction_receipt(tracked.tx_hash)
        except TransactionNotFound:
            return False
        return receipt["blockHash"].to_0x_hex() == tracked.block_hash

    def holdings(self, number: int) -> dict[str, tuple[int, int]]:
        wallets = self.operator_wallets()
        at = hex(number)
        calls: list[tuple[str, list]] = []
        codes: list[str] = []
        for address in wallets:
            if self.native is not None:
                calls.append(("eth_getBalance", [address, at]))
                codes.append(self.native.code)
            for contract, asset in self.tokens.items():
                data = BALANCE_OF + address.removeprefix("0x").rjust(64, "0")
                calls.append(("eth_call", [{"to": contract, "data": data}, at]))
                codes.append(asset.code)
        held = {a.code: 0 for a in (self.native, *self.tokens.values()) if a is not None}
        for code, units in zip(codes, batch_quantities(self.w3, calls, number), strict=True):
            held[code] += units
        return {code: (units, len(wallets)) for code, units in held.items()}

    def read_block(self, number: int) -> str:
        block = self.w3.eth.get_block(number, full_transactions=True)
        block_hash = block["hash"].to_0x_hex()
        at = (number, block_hash, int(block["timestamp"]) * 1000)
        outflows: dict[tuple[str, str, str], list] = {}  # (tx, asset, wallet) -> [to, units]
        if self.native is not None:
            for tx in block["transactions"]:
                if self.wallet_role(tx["from"]):
                    receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                    spent = receipt["gasUsed"] * receipt["effectiveGasPrice"]
                    spent += tx["value"] if receipt["status"] == 1 else 0
                    key = (tx["hash"].to_0x_hex(), self.native.code, tx["from"])
                    outflows[key] = [tx.get("to") or "", spent]
                to = (tx.get("to") or "").lower()
                if tx["value"] > 0 and self.receives(tx["from"], to):
                    self.track(
                        self.native,
                        tx["hash"].to_0x_hex(),
                        0,
                        at,
                        tx["from"],
                        to,
                        tx["value"],
                    )
        if self.tokens:
            logs = self.w3.eth.get_logs(
                {
                    "fromBlock": number,
                    "toBlock": number,
                    "address": [Web3.to_checksum_address(c) for c in self.tokens],
                    "topics": [TRANSFER_TOPIC],
                }
            )
            for entry in logs:
                if len(entry["topics"]) != 3 or len(bytes(entry["data"])) != 32:
                    continue  # not an ERC20 Transfer(from, to, value) (e.g. ERC721's)
                to = "0x" + entry["topics"][2].hex()[-40:]
                asset = self.tokens[entry["address"].lower()]
                sender = "0x" + entry["topics"][1].hex()[-40:]
                value = int.from_bytes(bytes(entry["data"]), "big")
                if self.wallet_role(sender) and value > 0:
                    key = (entry["transactionHash"].to_0x_hex(), asset.code, sender)
                    outflows.setdefault(key, [to, 0])[1] += value
                if not self.receives(sender, to):
                    continue
                self.track(
                    asset,
                    entry["transactionHash"].to_0x_hex(),
                    entry["logIndex"],
                    at,
                    sender,
                    to.lower(),
                    value,
                )
        assets = {a.code: a for a in self.assets.values()}
        for (tx_hash, code, wallet), (to, units) in outflows.items():
            self.outflow(assets[code], tx_hash, (number, block_hash), wallet, to, units)
        return block_hash
