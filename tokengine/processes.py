"""Child processes the engine starts and owns: started in their own group, stopped with
SIGTERM then SIGKILL, and SIGTERMed when their parent dies (PR_SET_PDEATHSIG), so a killed
`tokengine up` or test run leaves no orphans. Plus free loopback ports and readiness waits."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def await_ready(process: ManagedProcess, ready: Callable[[], bool]) -> None:
    """Wait until `ready()` holds; a process that exits first is an error with its log."""
    wait_until(lambda: ready() or not process.alive(), START_TIMEOUT_S, process.name)
    if not process.alive():
        raise ServiceError(f"{process.name} exited at start:\n{process.log_tail()}")


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
