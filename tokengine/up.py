"""`tokengine up`: the whole engine on the embedded default, until Ctrl-C or SIGTERM.

Starts the services the settings do not point at (tansu, Postgres, anvil, a regtest
bitcoind when installed, with a miner thread), creates the topics, applies the database
migrations, starts the Postgres sink, the connectors (chain watchers and payout
executors, with funded keys on the embedded nodes) and the Faust workers (each serving
the HTTP API), waits until every worker answers ready, prints the one `ready:` line, then a progress
line while it runs. A worker, the sink or the connectors are restarted with backoff when
they die. On a signal, everything is stopped in reverse order and nothing is left running.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

from core.config import Settings
from sinks.migrate import migrate
from tokengine.chain_nodes import embedded_btc_payout_key
from tokengine.processes import ManagedProcess, free_port, port_accepts
from tokengine.services import EmbeddedServices
from topics.admin import create_topics

READY_TIMEOUT_S = 90.0
PROGRESS_INTERVAL_S = 5.0
MAX_RESTART_BACKOFF_S = 30.0
REGTEST_BLOCK_TIME_S = 2.0


@dataclass
class WorkerHandle:
    index: int
    api_port: int
    process: ManagedProcess
    restarts: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def get_json(url: str, timeout_s: float = 2.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}
    except (OSError, ValueError):
        return 0, {}


def start_worker(settings: Settings, index: int, api_port: int) -> ManagedProcess:
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **_base_env(),
        **settings.as_environ(),
        "TOKENGINE_API_PORT": str(api_port),
        "TOKENGINE_DATA_DIR": str(settings.data_dir / f"worker-{index}"),
        # one drop directory for all workers (a file is claimed by an atomic rename)
        "TOKENGINE_BANK_DROP_DIR": str(settings.bank_inbox),
    }
    argv = [sys.executable, "-m", "tokengine", "worker"]
    return ManagedProcess.start(f"worker-{index}", argv, log_dir / f"worker-{index}.log", env=env)


@dataclass
class ChildHandle:
    """The sink or the connectors: one process each, restarted when it dies."""

    command: str
    process: ManagedProcess
    restarts: int = 0


def start_child(settings: Settings, command: str) -> ManagedProcess:
    """`tokengine sink` or `tokengine connectors`, logging to DATA_DIR/logs/<command>.log."""
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**_base_env(), **settings.as_environ()}
    argv = [sys.executable, "-m", "tokengine", command]
    return ManagedProcess.start(command, argv, log_dir / f"{command}.log", env=env)


# anvil's well-known development key #9 (public knowledge: local nodes only)
ANVIL_DEV_KEY_9 = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"


def embedded_payout_keystore(settings: Settings) -> Settings:
    """On the embedded anvil, pay out from a funded development account (a keystore file)."""
    if settings.eth_keystore is not None or not settings.eth_rpc:
        return settings
    from eth_account import Account

    password = "embedded-anvil"
    path = settings.data_dir / "eth-keystore.json"
    path.write_text(json.dumps(Account.encrypt(ANVIL_DEV_KEY_9, password, iterations=2)))
    return settings.with_overrides(eth_keystore=path, eth_keystore_password=password)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINE_")}


def wait_ready(workers: list[WorkerHandle], stop: threading.Event) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        for handle in workers:
            if not handle.process.alive():
                print(
                    f"error: {handle.process.name} exited at start; last log lines:\n"
                    f"{handle.process.log_tail()}",
                    file=sys.stderr,
                )
                return False
        if all(get_json(h.api_url + "/api/v1/health")[0] == 200 for h in workers):
            return True
        stop.wait(0.2)
    return False


def progress_line(workers: list[WorkerHandle]) -> str:
    events = dead = 0.0
    alive = 0
    for handle in workers:
        status, stats = get_json(handle.api_url + "/api/v1/stats")
        if status == 200:
            alive += 1
            events += stats.get("events_processed", 0)
            dead += stats.get("dead_letters", 0)
    return f"progress: workers={alive}/{len(workers)} events={events:.0f} dead_letters={dead:.0f}"


def choose_api_port(preferred: int) -> int:
    if preferred and not port_accepts(preferred):
        return preferred
    return free_port()


def run_up(settings: Settings) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started_at = time.monotonic()
    services = EmbeddedServices(
        settings, eth_block_time_s=1.0, want_btc=True, btc_block_time_s=REGTEST_BLOCK_TIME_S
    )
    workers: list[WorkerHandle] = []
    children: list[ChildHandle] = []
    try:
        settings = services.start()
        create_topics(settings.kafka, settings.topic_prefix)
        migrate(settings.database_url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if services.started_eth:
            settings = embedded_payout_keystore(settings)
        if services.started_btc:
            settings = embedded_btc_payout_key(settings)
        children.append(ChildHandle("sink", start_child(settings, "sink")))
        if settings.eth_rpc or settings.btc_rpc:
            children.append(ChildHandle("connectors", start_child(settings, "connectors")))
        for index in range(settings.workers):
            port = choose_api_port(settings.api_port if index == 0 else 0)
            workers.append(WorkerHandle(index, port, start_worker(settings, index, port)))
        if not wait_ready(workers, stop):
            if not stop.is_set():
                print("error: the workers did not become ready", file=sys.stderr)
            return 0 if stop.is_set() else 1
        print(
            f"ready: kafka={settings.kafka} postgres={settings.database_url} "
            f"eth={settings.eth_rpc} api={workers[0].api_url}"
            + (f" btc={settings.btc_rpc}" if settings.btc_rpc else ""),
            flush=True,
        )
        print(
            f"started in {time.monotonic() - started_at:.1f} s; worker logs in "
            f"{settings.data_dir / 'logs'}; bank files go in {settings.bank_inbox}; "
            "Ctrl-C stops everything",
            flush=True,
        )
        supervise(settings, workers, children, stop)
        return 0
    finally:
        for handle in workers:
            handle.process.stop()
        for child in children:
            child.process.stop()
        services.stop()
        print("stopped", flush=True)


def supervise(
    settings: Settings,
    workers: list[WorkerHandle],
    children: list[ChildHandle],
    stop: threading.Event,
) -> None:
    last_line = ""
    while not stop.wait(PROGRESS_INTERVAL_S):
        for child in children:
            if child.process.alive():
                continue
            code = child.process.process.returncode
            print(f"warning: {child.command} exited ({code}); restarting", flush=True)
            if stop.wait(min(MAX_RESTART_BACKOFF_S, 2.0**child.restarts)):
                return
            child.restarts += 1
            child.process = start_child(settings, child.command)
        for handle in workers:
            if handle.process.alive():
                continue
            backoff = min(MAX_RESTART_BACKOFF_S, 2.0**handle.restarts)
            print(
                f"warning: {handle.process.name} exited ({handle.process.process.returncode}); "
                f"restarting in {backoff:.0f} s",
                flush=True,
            )
            if stop.wait(backoff):
                return
            handle.restarts += 1
            handle.process = start_worker(settings, handle.index, handle.api_port)
        line = progress_line(workers)
        if line != last_line:
            print(line, flush=True)
            last_line = line
