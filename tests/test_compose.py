"""docker-compose.kafka.yml cannot run here (no Docker engine); check it is wired right.

Pure: reads the compose file, deploy/kafka/acls.sh and the catalogue. What runs them
(promtool, the entrypoints with stand-ins, the processes' /metrics) is tests/test_deploy.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import yaml

from core.config import EMBEDDED_ONLY_VARIABLES, ENVIRONMENT_VARIABLES
from topics import catalogue

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
SERVICES = COMPOSE["services"]
TOKENGINE_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s}
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
URL_VARIABLES = ("TOKENGINE_DATABASE_URL", "TOKENGINE_ETH_RPC", "TOKENGINE_SCHEMA_REGISTRY")
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "JAAS", "CREDENTIAL")
RUN_SECRETS = "/run/secrets/"
REQUEST_TOPICS = set(catalogue.REQUEST_TOPICS.values())
# what downstream consumers read: the ledger's outputs (catalogue readers "downstream") and
# the ledger itself, and operator alerts; never the requests, commands or dead letters
DOWNSTREAM_TOPICS = {
    catalogue.LEDGER_ENTRIES,
    catalogue.BALANCE_UPDATES,
    catalogue.REQUEST_RESULTS,
    catalogue.ALERTS,
}
ENGINE_USERS = {"worker": catalogue.WORKER, "connectors": catalogue.CONNECTORS, "sink": "sink"}
NOT_CATALOGUE_TOPICS = {"_schemas", "__consumer_offsets"}


def environment(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[name].get("environment", {}).items()}


def container_ports(service: dict) -> set[int]:
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    ports |= {int(p) for p in service.get("expose", [])}
    listeners = str(service.get("environment", {}).get("KAFKA_LISTENERS", ""))
    ports |= {int(port) for port in re.findall(r":(\d+)", listeners)}
    url = str(service.get("environment", {}).get("SCHEMA_REGISTRY_LISTENERS", ""))
    ports |= {int(port) for port in re.findall(r":(\d+)", url)}
    return ports


def kafka_targets(env: dict[str, str]) -> list[tuple[str, str]]:
    return [tuple(address.split(":")) for address in env["TOKENGINE_KAFKA"].split(",")]


def listeners(broker: str, variable: str = "KAFKA_LISTENERS") -> dict[str, tuple[str, int]]:
    """{listener name: (host, port)} of a broker's listeners."""
    found = {}
    for item in environment(broker)[variable].split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        found[name] = (host, int(port))
    return found


def service_secrets(service: dict) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


def acl_grants() -> list[tuple[str, str, str, str, set[str]]]:
    """(user, resource, pattern, name, operations) of every `allow` line of acls.sh."""
    env = environment("acls")
    names = {"${P}": env["TOKENGINE_TOPIC_PREFIX"], "${A}": env["TOKENGINE_APP_ID"]}
    grants = []
    for line in (ROOT / "deploy" / "kafka" / "acls.sh").read_text().splitlines():
        if not line.startswith("allow "):
            continue
        _, user, resource, pattern, name, *operations = shlex.split(line)
        for variable, value in names.items():
            name = name.replace(variable, value)
        grants.append((user, resource, pattern, name, set(operations)))
    return grants


def topic_grants(user: str) -> dict[tuple[str, str], set[str]]:
    """{(pattern, topic): operations} of one user."""
    return {
        (pattern, name): operations
        for who, resource, pattern, name, operations in acl_grants()
        if who == user and resource == "topic"
    }


def test_the_engine_reads_only_documented_variables() -> None:
    read = set()
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        read |= set(re.findall(r"\"(TOKENGINE_[A-Z_]+)\"", path.read_text()))
    assert read == set(ENVIRONMENT_VARIABLES) | set(EMBEDDED_ONLY_VARIABLES)


def test_every_service_the_deployment_needs_is_there() -> None:
    wanted = {
        *BROKERS,
        "acls",
        "topics",
        "migrate",
        "sink",
        "connectors",
        "worker",
        "schema-registry",
        "postgres",
        "prometheus",
        "grafana",
        "kafka-ui",
    }
    assert wanted <= set(SERVICES), sorted(wanted - set(SERVICES))
    assert {"topics", "migrate", "sink", "connectors", "worker"} <= set(TOKENGINE_SERVICES)
    commands = {name: s["command"][:3] for name, s in TOKENGINE_SERVICES.items()}
    assert commands["topics"] == ["tokengine", "topics", "create"]
    assert commands["migrate"] == ["tokengine", "db", "migrate"]
    assert commands["sink"] == ["tokengine", "sink"]
    assert commands["connectors"] == ["tokengine", "connectors"]
    assert commands["worker"] == ["tokengine", "worker"]
    assert (ROOT / "Dockerfile").exists()


def test_every_engine_service_sets_every_variable() -> None:
    for name, service in TOKENGINE_SERVICES.items():
        missing = set(ENVIRONMENT_VARIABLES) - set(service["environment"])
        assert not missing, f"{name} does not set {sorted(missing)}"
        env = environment(name)
        assert env["TOKENGINE_PROCESSING_GUARANTEE"] == "exactly_once"
        assert env["TOKENGINE_API_BIND"] == "0.0.0.0", f"{name}: a container listens on all"
        assert env["TOKENGINE_TOPIC_REPLICATION_FACTOR"] == "3", name
        assert env["TOKENGINE_TOPIC_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["TOKENGINE_KAFKA"] == ",".join(f"{b}:9092" for b in BROKERS), name
        assert env["TOKENGINE_KAFKA_SECURITY_PROTOCOL"].startswith("SASL_"), name


def test_addresses_point_at_services_that_listen_there() -> None:
    for name in TOKENGINE_SERVICES:
        env = environment(name)
        targets = kafka_targets(env)
        for variable in URL_VARIABLES:
            if env[variable]:
                url = urlparse(env[variable])
                targets.append((url.hostname, str(url.port)))
        for host, port in targets:
            assert host in SERVICES, f"{name}: {host} is not a compose service"
            assert int(port) in container_ports(SERVICES[host]), f"{host} does not listen on {port}"
        for host, port in kafka_targets(env):
            assert listeners(host)["CLIENT"][1] == int(port), f"{host}:{port} is not CLIENT"
    registry = environment("schema-registry")["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"]
    assert registry == ",".join(f"SASL_PLAINTEXT://{b}:9092" for b in BROKERS)
    for name in ("sink", "connectors"):
        port = environment(name)["TOKENGINE_METRICS_PORT"]
        assert int(port) > 0 and int(port) in container_ports(SERVICES[name]), name
        assert not SERVICES[name].get("ports"), f"{name}: its /metrics has no key: never publish"
    assert environment("worker")["TOKENGINE_METRICS_PORT"] == "0"  # on its API port


def test_three_kraft_nodes_form_one_quorum() -> None:
    voters = {environment(b)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in BROKERS}
    assert len(voters) == 1
    quorum = dict(voter.split("@") for voter in voters.pop().split(","))
    assert len({environment(b)["CLUSTER_ID"] for b in BROKERS}) == 1
    for broker in BROKERS:
        env = environment(broker)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert "ZOOKEEPER" not in " ".join(env)
        assert quorum[env["KAFKA_NODE_ID"]] == ":".join(
            map(str, listeners(broker)["CONTROLLER"])
        ), f"{broker}: its quorum address is its controller listener"
        advertised = listeners(broker, "KAFKA_ADVERTISED_LISTENERS")
        assert advertised["CLIENT"] == (broker, 9092)
        assert "CONTROLLER" not in advertised
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
        assert "container_name" not in SERVICES[broker]
    assert len({environment(b)["KAFKA_NODE_ID"] for b in BROKERS}) == 3


def test_the_quorum_and_replication_listen_only_on_the_brokers_network() -> None:
    internal = COMPOSE["networks"]["kafka-internal"]
    assert internal["internal"] is True
    on_it = {name for name, s in SERVICES.items() if "kafka-internal" in s.get("networks", {})}
    assert on_it == set(BROKERS)
    for broker in BROKERS:
        aliases = SERVICES[broker]["networks"]["kafka-internal"]["aliases"]
        for listener in ("CONTROLLER", "INTERNAL"):
            host, _ = listeners(broker)[listener]
            assert host in aliases, f"{broker} {listener} binds {host}, not the brokers' network"
        assert not (SERVICES[broker]["networks"].get("default") or {}).get("aliases")


def test_every_listener_authenticates_and_acls_refuse_the_rest() -> None:
    for broker in BROKERS:
        env = environment(broker)
        pairs = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        protocols = dict(pair.split(":") for pair in pairs)
        assert set(protocols) == set(listeners(broker))
        assert all(p.startswith("SASL_") for p in protocols.values()), protocols
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == (
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        )
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert set(env["KAFKA_SUPER_USERS"].split(";")) == {"User:broker", "User:admin"}
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"


def test_one_broker_may_fail_without_losing_or_stopping_writes() -> None:
    for broker in BROKERS:
        env = {k: int(v) for k, v in environment(broker).items() if v.isdigit()}
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2
    for name in TOKENGINE_SERVICES:
        env = environment(name)
        replicas = int(env["TOKENGINE_TOPIC_REPLICATION_FACTOR"])
        in_sync = int(env["TOKENGINE_TOPIC_MIN_INSYNC_REPLICAS"])
        assert replicas == len(BROKERS) and 1 < in_sync < replicas, name
    registry = environment("schema-registry")
    assert registry["SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"] == "3"


def test_workers_scale_without_colliding() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    for port in worker.get("ports", []):
        host_part = str(port).rsplit(":", 1)[0].split(":")[-1]
        low, _, high = host_part.partition("-")
        assert high and int(high) - int(low) + 1 >= 3, f"{port}: one host port per worker"
    assert "volumes" not in worker or all(
        not v.endswith(":/var/lib/tokengine") for v in worker["volumes"]
    ), "scaled workers must not share one DATA_DIR"


def test_no_secret_value_in_any_environment() -> None:
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            value = str(value)
            assert "password=" not in value.lower(), f"{name} {key}"
            if not any(word in key.upper() for word in SECRET_WORDS):
                continue
            if key.endswith("_FILE") or value.startswith(RUN_SECRETS) or value == "":
                continue
            raise AssertionError(f"{name}: {key} holds a value; use a /run/secrets file")
    for name in TOKENGINE_SERVICES:
        url = environment(name)["TOKENGINE_DATABASE_URL"]
        if url:
            assert urlparse(url).password is None, name
            query = dict(parse_qsl(urlparse(url).query))
            assert set(query) == {"passfile"} and query["passfile"].startswith(RUN_SECRETS)


def test_every_secret_is_a_file_and_reaches_only_who_needs_it() -> None:
    declared = COMPOSE["secrets"]
    for name, secret in declared.items():
        assert secret["file"] == f"./deploy/secrets/{name}", name
    for name, service in SERVICES.items():
        mounted = service_secrets(service)
        assert mounted <= set(declared), f"{name}: {mounted - set(declared)}"
        for key, value in service.get("environment", {}).items():
            if str(value).startswith(RUN_SECRETS):
                path = str(value)
                file = path[len(RUN_SECRETS) :].split("?")[0]
                assert file in mounted, f"{name}: {key} names {path}, not mounted"
        url = environment(name).get("TOKENGINE_DATABASE_URL", "")
        if url:
            passfile = dict(parse_qsl(urlparse(url).query))["passfile"]
            assert passfile[len(RUN_SECRETS) :] in mounted, name
    connectors = environment("connectors")
    assert connectors["TOKENGINE_ETH_KEYSTORE_PASSWORD"] == ""
    password_file = connectors["TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE"]
    assert password_file == f"{RUN_SECRETS}eth-keystore.password"
    payout = {"eth-keystore.json", "eth-keystore.password"}
    holders = {name for name, s in SERVICES.items() if service_secrets(s) & payout}
    assert holders == {"connectors"}
    keys = {name for name, s in SERVICES.items() if "record-keys.json" in service_secrets(s)}
    assert keys and keys <= set(TOKENGINE_SERVICES), keys
    postgres = environment("postgres")
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    assert "POSTGRES_PASSWORD" not in postgres
    assert "prometheus-metrics-key" in service_secrets(SERVICES["prometheus"])
    # each engine service authenticates with its own user's password file
    for name in TOKENGINE_SERVICES:
        env = environment(name)
        user = env["TOKENGINE_KAFKA_SASL_USERNAME"]
        if user:
            password_file = env["TOKENGINE_KAFKA_SASL_PASSWORD_FILE"]
            assert password_file == f"{RUN_SECRETS}kafka-{user}-password", name


def test_every_kafka_user_exists_from_the_first_format() -> None:
    users = {tuple(environment(b)["SCRAM_USERS"].split()) for b in BROKERS}
    assert len(users) == 1
    users = set(users.pop())
    for broker in BROKERS:
        assert {f"kafka-{u}-password" for u in users} <= service_secrets(SERVICES[broker])
    in_use = {environment(n)["TOKENGINE_KAFKA_SASL_USERNAME"] for n in TOKENGINE_SERVICES}
    assert in_use - {""} <= users
    assert {user for user, *_ in acl_grants()} <= users
    assert {"broker", "admin", "upstream", "downstream", "schema-registry", "ui"} <= users


def test_engine_services_share_no_kafka_user_with_outsiders() -> None:
    outsiders = {"upstream", "downstream", "ui", "schema-registry"}
    for name in TOKENGINE_SERVICES:
        assert environment(name)["TOKENGINE_KAFKA_SASL_USERNAME"] not in outsiders, name
    for kind in ("worker", "sink", "connectors"):
        assert environment(kind)["TOKENGINE_KAFKA_SASL_USERNAME"] == kind
    ui = SERVICES["kafka-ui"]
    assert service_secrets(ui) == {"kafka-ui-password", "ui-login-password"}
    assert environment("kafka-ui")["KAFKA_CLUSTERS_0_READONLY"] == "true"
    assert service_secrets(SERVICES["schema-registry"]) == {"kafka-schema-registry-password"}


def test_upstream_may_only_write_the_request_topics() -> None:
    prefix = environment("acls")["TOKENGINE_TOPIC_PREFIX"]
    grants = [g for g in acl_grants() if g[0] == "upstream"]
    assert {resource for _, resource, *_ in grants} == {"topic"}
    assert topic_grants("upstream") == {
        ("LITERAL", prefix + topic): {"Write", "Describe"} for topic in REQUEST_TOPICS
    }


def test_downstream_may_only_read_the_ledgers_outputs() -> None:
    prefix = environment("acls")["TOKENGINE_TOPIC_PREFIX"]
    assert topic_grants("downstream") == {
        ("LITERAL", prefix + topic): {"Read", "Describe"} for topic in DOWNSTREAM_TOPICS
    }
    groups = [g for g in acl_grants() if g[0] == "downstream" and g[1] != "topic"]
    assert groups == [("downstream", "group", "PREFIXED", "downstream-", {"Read", "Describe"})]


def test_engine_users_write_exactly_what_they_sign() -> None:
    prefix = environment("acls")["TOKENGINE_TOPIC_PREFIX"]
    for user, signer in ENGINE_USERS.items():
        written = {
            name[len(prefix) :]
            for (pattern, name), operations in topic_grants(user).items()
            if "Write" in operations and pattern == "LITERAL" and name.startswith(prefix)
        }
        signed = {topic for topic, signers in catalogue.SIGNERS.items() if signer in signers}
        requests = REQUEST_TOPICS if user == "worker" else set()  # the API takes requests
        assert written == signed | requests, f"{user}: {written ^ (signed | requests)}"
        assert ("PREFIXED", prefix) in topic_grants(user), f"{user} reads the engine's topics"
        assert not any(
            "Write" in ops and pattern == "PREFIXED" and name == prefix
            for (pattern, name), ops in topic_grants(user).items()
        )


def test_engine_groups_are_the_ones_the_code_joins() -> None:
    app_id = environment("acls")["TOKENGINE_APP_ID"]
    assert environment("worker")["TOKENGINE_APP_ID"] == app_id
    sources = {
        "sink": (ROOT / "sinks" / "postgres.py").read_text(),
        "connectors": (ROOT / "connectors" / "runner.py").read_text(),
    }
    for user, source in sources.items():
        joined = {
            name.replace(app_id, "{settings.app_id}", 1)
            for who, resource, pattern, name, ops in acl_grants()
            if who == user and resource == "group" and "Read" in ops
        }
        for group in joined:
            assert f'f"{group}"' in source, f"{user}: no group {group} in the code"


def test_every_acl_topic_is_in_the_catalogue() -> None:
    prefix = environment("acls")["TOKENGINE_TOPIC_PREFIX"]
    app_id = environment("acls")["TOKENGINE_APP_ID"]
    for user, resource, pattern, name, _ in acl_grants():
        if resource != "topic" or name in NOT_CATALOGUE_TOPICS:
            continue
        if pattern == "PREFIXED":
            assert name in (prefix, f"{app_id}-"), f"{user}: prefix {name}"
            continue
        assert catalogue.short_name(name, prefix) in catalogue.BY_NAME, f"{user}: {name}"
    for name in TOKENGINE_SERVICES:
        assert environment(name)["TOKENGINE_TOPIC_PREFIX"] == prefix


def test_dependencies_exist_and_wait_for_what_they_need() -> None:
    jobs = {"acls", "topics", "migrate", "metrics-key"}
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            wanted = condition["condition"]
            if dependency in jobs:
                assert wanted == "service_completed_successfully", f"{name} on {dependency}"
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency}: no healthcheck"
    for name in ("sink", "connectors", "worker"):
        assert "topics" in SERVICES[name]["depends_on"], name
    for name in ("sink", "worker"):
        assert "migrate" in SERVICES[name]["depends_on"], name
    for broker in BROKERS:
        assert SERVICES["acls"]["depends_on"][broker]["condition"] == "service_healthy"
