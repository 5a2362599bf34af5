"""Shared fixtures: the real embedded services, isolated topic namespaces, real workers.

One tansu broker and one Postgres serve the whole session (or the ones named by
TOKENGINE_KAFKA / TOKENGINE_DATABASE_URL). Each test that needs topics gets its own
prefix, so tests never see each other's messages. Workers run as real subprocesses
(`python -m tokengine worker`), so tests can SIGKILL and restart them.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.config import Settings
from tests.http import serve
from tests.processes import forget_started_data
from tokengine.processes import ManagedProcess, free_port
from tokengine.services import EmbeddedServices
from tokengine.up import get_json
from topics.admin import create_topics
from topics.codec import SingleObjectCodec

ASSETS_FILE = Path(__file__).parent / "fixtures" / "assets.toml"

WORKER_READY_TIMEOUT_S = 90.0


@pytest.fixture(scope="session", autouse=True)
def _forget_started_data() -> Iterator[None]:
    yield
    forget_started_data()


@pytest.fixture(scope="session")
def services() -> Iterator[Settings]:
    base = Settings.from_env()
    with EmbeddedServices(base, want_eth=False) as settings:
        yield settings


@pytest.fixture
def settings(services: Settings, tmp_path: Path) -> Settings:
    """Settings with a fresh topic prefix and app id; the catalogue's topics exist."""
    run = uuid.uuid4().hex[:8]
    isolated = services.with_overrides(
        topic_prefix=f"t{run}.",
        app_id=f"tokengine-{run}",
        data_dir=tmp_path / "data",
        assets_file=ASSETS_FILE,
    )
    create_topics(isolated.kafka, isolated.topic_prefix)
    return isolated


@pytest.fixture
def codec() -> SingleObjectCodec:
    return SingleObjectCodec()


@dataclass
class Worker:
    settings: Settings
    api_port: int
    index: int
    process: ManagedProcess | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, wait: bool = True) -> Worker:
        env = {
            **os.environ,
            **self.settings.as_environ(),
            "TOKENGINE_API_PORT": str(self.api_port),
            "TOKENGINE_DATA_DIR": str(self.settings.data_dir / f"worker-{self.index}"),
        }
        log = self.settings.data_dir / f"worker-{self.index}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tokengine", "worker"]
        self.process = ManagedProcess.start(f"worker-{self.index}", argv, log, env=env)
        serve(self.api_url, self.settings)  # tests.http calls it with these topics' keys
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process and self.process.alive(), self.process.log_tail(60)
            if get_json(self.api_url + "/api/v1/health")[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready:\n{self.process.log_tail(60)}")

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        assert self.process
        self.process.kill()
        self.process.process.wait(10)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@pytest.fixture
def start_worker(settings: Settings) -> Iterator:
    """Start workers against the test's topics; all are stopped at the end."""
    started: list[Worker] = []

    def start(wait: bool = True, settings: Settings = settings) -> Worker:
        worker = Worker(settings, free_port(), len(started))
        started.append(worker)
        return worker.start(wait)

    yield start
    for worker in started:
        worker.stop()
