"""`tokengine up`: the whole engine on the embedded default, until Ctrl-C or SIGTERM.

Starts the services the settings do not point at (tansu, Postgres, anvil, a regtest
bitcoind when installed, with a miner thread), creates the topics, applies the database
migrations, starts the Postgres sink, the connectors (chain watchers and payout
executors, with funded keys on the embedded nodes) and the Faust workers (each serving
the HTTP API), waits until every worker answers ready, prints the one `ready:` line, then a progress
line while it runs. A worker, the sink or the connectors are restarted with backoff when
they die. On a signal, everything is stopped in reverse order and nothing is left running.

Everything it starts keeps its state under DATA_DIR (default ./var): the Kafka log, Postgres,
the chain nodes (DATA_DIR/services), keys (DATA_DIR/secrets), the workers' and connectors'
local files; `up` twice is the same ledger. `up --fresh` empties DATA_DIR first (only a
directory `up` made: it carries the `.tokengine-data` marker).
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.config import Settings
from core.secrets import redacted, secrets_dir, write_secret_file
from sinks.migrate import migrate
from tokengine.chain_nodes import embedded_btc_payout_key, embedded_payout_keystore
from tokengine.processes import ManagedProcess, ServiceError, free_port, port_accepts
from tokengine.services import EmbeddedServices, forget_postgres_elsewhere
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


def get_json(url: str, timeout_s: float = 2.0, key: str | None = None) -> tuple[int, dict]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
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
        **child_environ(settings, "worker"),
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
    metrics_port: int = 0  # its /metrics (0: none), the same after a restart

    @classmethod
    def started(cls, settings: Settings, command: str) -> ChildHandle:
        port = free_port()
        return cls(command, start_child(settings, command, port), metrics_port=port)

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


def start_child(settings: Settings, command: str, metrics_port: int = 0) -> ManagedProcess:
    """`tokengine sink` or `tokengine connectors`, logging to DATA_DIR/logs/<command>.log,
    serving /metrics on `metrics_port` (0: not)."""
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**_base_env(), **child_environ(settings, command)}
    env["TOKENGINE_METRICS_PORT"] = str(metrics_port)
    argv = [sys.executable, "-m", "tokengine", command]
    return ManagedProcess.start(command, argv, log_dir / f"{command}.log", env=env)


# only the connectors pay out: no other process gets the keys or the node credentials
CONNECTOR_ONLY_VARIABLES = (
    "TOKENGINE_ETH_KEYSTORE",
    "TOKENGINE_ETH_KEYSTORE_PASSWORD",
    "TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE",
    "TOKENGINE_BTC_PAYOUT_KEY_FILE",
    "TOKENGINE_ETH_SWEEP_KEY_FILE",
    "TOKENGINE_BTC_RPC_COOKIE_FILE",
)


def child_environ(settings: Settings, command: str) -> dict[str, str]:
    """The TOKENGINE_* variables one child needs: payout secrets for the connectors only."""
    env = settings.as_environ()
    if command != "connectors":
        for name in CONNECTOR_ONLY_VARIABLES:
            env.pop(name, None)
    return env


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


def first_operator_key(settings: Settings) -> Path:
    """The operator key made at the first start (DATA_DIR/secrets/operator.key)."""
    return kept_key(settings, "operator", "OPERATOR", "first operator")


def kept_key(settings: Settings, name: str, role: str, label: str) -> Path:
    """A key `up` makes for itself at the first start (DATA_DIR/secrets/<name>.key, readable
    by its owner only; its public record beside it): made once, its record published again
    when the broker no longer has it."""
    from topics.codec import make_codec
    from topics.operator_records import issue_key, republish_key

    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    path = secrets_dir(settings.data_dir) / f"{name}.key"
    record_path = path.with_name(f"{name}.key.json")
    if path.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        record["changed_at"] = datetime.fromisoformat(record["changed_at"])
        republish_key(settings, codec, path.read_text().strip(), record)
        return path
    token, record = issue_key(settings, codec, role, [], label, "up")
    write_secret_file(path, token + "\n")
    write_secret_file(
        record_path, json.dumps({**record, "changed_at": record["changed_at"].isoformat()})
    )
    return path


def start_monitoring(
    settings: Settings, workers: list[WorkerHandle], children: list[ChildHandle]
) -> tuple[str, ManagedProcess] | None:
    """The embedded Prometheus (`tokengine.monitoring`) when it is installed: (url, process)."""
    from tokengine.monitoring import prometheus_binary, scrape_config, start_prometheus

    if prometheus_binary() is None:
        print("note: no prometheus installed (Debian's `prometheus`): not monitoring")
        return None
    key_file = kept_key(settings, "prometheus", "AUDITOR", "embedded prometheus")
    targets = {child.command: child.metrics_target for child in children}
    config = scrape_config(
        [f"127.0.0.1:{handle.api_port}" for handle in workers],
        targets.get("sink"),
        targets.get("connectors"),
        key_file,
    )
    try:
        return start_prometheus(settings.data_dir / SERVICES_DIR / "prometheus", config)
    except ServiceError as error:  # monitoring is not worth stopping the engine for
        print(f"warning: prometheus did not start: {error}", flush=True)
        return None


def progress_line(workers: list[WorkerHandle], key: str | None = None) -> str:
    events = dead = 0.0
    alive = 0
    for handle in workers:
        status, stats = get_json(handle.api_url + "/api/v1/stats", key=key)
        if status == 200:
            alive += 1
            events += stats.get("events_processed", 0)
            dead += stats.get("dead_letters", 0)
    return f"progress: workers={alive}/{len(workers)} events={events:.0f} dead_letters={dead:.0f}"


def choose_api_port(preferred: int) -> int:
    if preferred and not port_accepts(preferred):
        return preferred
    return free_port()


DATA_MARKER = ".tokengine-data"
SERVICES_DIR = "services"  # under DATA_DIR: what the embedded services keep


class DataDirError(RuntimeError):
    """DATA_DIR cannot be used (or emptied) as asked: the message says why."""


def prepare_data_dir(data_dir: Path, fresh: bool) -> None:
    """Make DATA_DIR (with its marker), or empty it first when `fresh`: only a directory
    that carries the marker, never one `up` did not make."""
    marker = data_dir / DATA_MARKER
    if fresh and data_dir.exists() and any(data_dir.iterdir()):
        if not marker.exists():
            raise DataDirError(
                f"--fresh: {data_dir} was not made by tokengine up (no {DATA_MARKER}); "
                "not emptying it"
            )
        forget_postgres_elsewhere(data_dir / SERVICES_DIR)
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.touch()


def run_up(settings: Settings, fresh: bool = False) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started_at = time.monotonic()
    # absolute: children and servers run elsewhere (Postgres in its data directory,
    # Prometheus reads paths relative to its configuration file)
    settings = settings.with_overrides(data_dir=settings.data_dir.resolve())
    try:
        prepare_data_dir(settings.data_dir, fresh)
    except DataDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    services = EmbeddedServices(
        settings,
        eth_block_time_s=1.0,
        want_btc=True,
        btc_block_time_s=REGTEST_BLOCK_TIME_S,
        state_dir=settings.data_dir / SERVICES_DIR,
    )
    workers: list[WorkerHandle] = []
    children: list[ChildHandle] = []
    try:
        settings = services.start()
        create_topics(
            settings.kafka,
            settings.topic_prefix,
            replication_factor=settings.topic_replication_factor,
            min_insync_replicas=settings.topic_min_insync_replicas,
        )
        migrate(settings.database_url)
        operator_key = first_operator_key(settings)
        if services.started_eth:
            settings = embedded_payout_keystore(settings)
        if services.started_btc:
            settings = embedded_btc_payout_key(settings)
        children.append(ChildHandle.started(settings, "sink"))
        if settings.eth_rpc or settings.btc_rpc:
            children.append(ChildHandle.started(settings, "connectors"))
        for index in range(settings.workers):
            port = choose_api_port(settings.api_port if index == 0 else 0)
            workers.append(WorkerHandle(index, port, start_worker(settings, index, port)))
        if not wait_ready(workers, stop):
            if not stop.is_set():
                print("error: the workers did not become ready", file=sys.stderr)
            return 0 if stop.is_set() else 1
        prometheus = start_monitoring(settings, workers, children)
        if prometheus is not None:
            services.processes.append(prometheus[1])
        print(
            f"ready: kafka={settings.kafka} postgres={redacted(settings.database_url)} "
            f"eth={redacted(settings.eth_rpc)} api={workers[0].api_url}"
            + (f" btc={redacted(settings.btc_rpc)}" if settings.btc_rpc else "")
            + (f" prometheus={prometheus[0]}" if prometheus else ""),
            flush=True,
        )
        print(
            f"data: {settings.data_dir.resolve()} (kept across runs: Kafka log, Postgres, "
            "chain nodes, keys; `tokengine up --fresh` starts from nothing)",
            flush=True,
        )
        print(
            f"operator key: {operator_key} (readable by you only; send it as "
            "Authorization: Bearer <key>; more keys: tokengine keys create --role ROLE)",
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
    operator_key = (settings.data_dir / "secrets" / "operator.key").read_text().strip()
    while not stop.wait(PROGRESS_INTERVAL_S):
        for child in children:
            if child.process.alive():
                continue
            code = child.process.process.returncode
            print(f"warning: {child.command} exited ({code}); restarting", flush=True)
            if stop.wait(min(MAX_RESTART_BACKOFF_S, 2.0**child.restarts)):
                return
            child.restarts += 1
            child.process = start_child(settings, child.command, child.metrics_port)
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
        line = progress_line(workers, operator_key)
        if line != last_line:
            print(line, flush=True)
            last_line = line
