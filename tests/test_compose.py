"""docker-compose.kafka.yml cannot run here (no Docker engine); check it is wired right."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

from core.config import EMBEDDED_ONLY_VARIABLES, ENVIRONMENT_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
SERVICES = COMPOSE["services"]
TOKENGINE_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s}
URL_VARIABLES = ("TOKENGINE_DATABASE_URL", "TOKENGINE_ETH_RPC", "TOKENGINE_SCHEMA_REGISTRY")


def container_ports(service: dict) -> set[int]:
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    listeners = service.get("environment", {}).get("KAFKA_LISTENERS", "")
    ports |= {int(port) for port in re.findall(r":(\d+)", listeners)}
    return ports


def test_the_engine_reads_only_documented_variables() -> None:
    read = set()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        read |= set(re.findall(r"\"(TOKENGINE_[A-Z_]+)\"", path.read_text()))
    assert read == set(ENVIRONMENT_VARIABLES) | set(EMBEDDED_ONLY_VARIABLES)


def test_every_engine_service_sets_every_variable() -> None:
    assert {"worker", "topics"} <= set(TOKENGINE_SERVICES)
    for name, service in TOKENGINE_SERVICES.items():
        missing = set(ENVIRONMENT_VARIABLES) - set(service["environment"])
        assert not missing, f"{name} does not set {sorted(missing)}"
        assert service["environment"]["TOKENGINE_PROCESSING_GUARANTEE"] == "exactly_once"


def test_addresses_point_at_services_that_listen_there() -> None:
    for service in TOKENGINE_SERVICES.values():
        env = service["environment"]
        targets = [tuple(env["TOKENGINE_KAFKA"].split(":"))]
        for variable in URL_VARIABLES:
            url = urlparse(env[variable])
            targets.append((url.hostname, str(url.port)))
        for host, port in targets:
            assert host in SERVICES, f"{host} is not a compose service"
            assert int(port) in container_ports(SERVICES[host]), f"{host} does not listen on {port}"


def test_dependencies_exist_and_kafka_runs_kraft() -> None:
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    kafka = SERVICES["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(kafka)
    registry = SERVICES["schema-registry"]["environment"]
    assert registry["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].endswith("kafka:9092")
    assert (ROOT / "Dockerfile").exists()
