"""With a Docker engine: the crash test (SIGKILL, rebalance, replay: exactly once) run
against a real Apache Kafka in a container (testcontainers), instead of the embedded tansu.

This machine has no Docker engine (the project's facts: no Docker, no Kafka package), so
here this test is skipped with that reason; on a machine with one it runs the whole
`tests/streams/test_ledger_crash.py` with `TOKENGINE_KAFKA` pointing at the container
(every fixture then uses it: `EmbeddedServices` starts no broker when one is given)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KAFKA_IMAGE = "confluentinc/cp-kafka:7.7.1"  # the image testcontainers drives (KRaft)


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(not docker_engine(), reason="no Docker engine on this machine")
def test_the_crash_test_holds_on_a_real_kafka() -> None:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        env = {**os.environ, "TOKENGINE_KAFKA": kafka.get_bootstrap_server()}
        crash_test = ROOT / "tests" / "streams" / "test_ledger_crash.py"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(crash_test)],
            env=env,
            cwd=ROOT,
        )
        assert done.returncode == 0
