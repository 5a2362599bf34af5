"""What docker-compose.kafka.yml runs, checked without a Docker engine.

- Prometheus: `promtool check rules`, the rules' unit tests (`promtool test rules`) and
  `promtool check config` on deploy/prometheus/ (promtool is Debian's `prometheus`
  package: missing, these tests fail, they are never skipped).
- Every metric the dashboard and the rules name is one the engine serves: scraped from a
  real worker's /metrics with Prometheus's key (made by deploy/make-secrets.py, put on the
  api-keys topic by the metrics-key job's script) and from a real sink and connectors
  process on TOKENGINE_METRICS_PORT (`tokengine.cli.running.serve_metrics`).
- Grafana's provisioning points at the compose file's Prometheus and dashboard directory.
- `make deploy-secrets` (deploy/make-secrets.py) makes every secret file the compose file
  mounts, 0600, in the engine's formats, and never replaces one.
- The broker entrypoint and the ACL script run here against stand-ins of the Kafka tools:
  what they render and call is checked (the configuration, the SCRAM users, the ACLs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from core import access
from core.access import AUDITOR
from core.secrets import read_secret_file
from tests import test_compose as compose
from tests.http import call_text
from tokengine.processes import ManagedProcess, free_port
from topics.authentication import RecordKeys

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tokengine.json"
MAKE_SECRETS = DEPLOY / "make-secrets.py"
METRIC = re.compile(r"\btoken_engine_[a-z0-9_]+\b")
SCRAPE_TIMEOUT_S = 60.0
# what a dashboard or rule must watch (the deployment's brief), by the metric that shows it
WATCHED = {
    "throughput": "token_engine_events_processed_total",
    "consumer lag": "token_engine_consumer_lag",
    "reconciliation discrepancies": "token_engine_reconciliation_discrepancies",
    "breaker state": "token_engine_circuit_breaker_active",
    "dead letters": "token_engine_dead_letters_total",
    "fee account floors": "token_engine_fee_floor",
}


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
    assert found, "promtool is missing: apt-get install prometheus (Debian's package has it)"
    return found


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    ran = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def exported_names(text: str) -> set[str]:
    """Every series name a /metrics page can give (a counter `x` is served as x_total)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        if family.type in ("histogram", "summary"):
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def wait_for_text(url: str, process: ManagedProcess) -> str:
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.alive(), process.log_tail()
        try:
            return call_text(url, key=None)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered:\n{process.log_tail()}")


def start_process(settings, command: str, log_dir: Path, **overrides) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {**os.environ, **settings.with_overrides(metrics_port=port, **overrides).as_environ()}
    argv = [sys.executable, "-m", "tokengine", command]
    return ManagedProcess.start(command, argv, log_dir / f"{command}.log", env=env), port


def write_stand_in(path: Path, log: Path) -> None:
    """A Kafka tool that records its arguments (one line each, calls separated by ---); an
    `@file` argument is recorded, then the arguments the file holds (as argparse4j reads
    them, one per line)."""
    path.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do printf "%s\\n" "$a"; case "$a" in @*) cat "${a#@}";; esac; done'
        f" >> {log}\necho --- >> {log}\n"
    )
    path.chmod(0o755)


def calls(log: Path) -> list[list[str]]:
    return [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]


# -- Prometheus -----------------------------------------------------------------------------


def test_the_alert_rules_are_valid_and_fire_when_they_should() -> None:
    assert "SUCCESS" in run_promtool("check", "rules", "rules.yml")
    assert "SUCCESS" in run_promtool("test", "rules", "rules.test.yml")


def test_the_prometheus_config_is_valid(tmp_path: Path) -> None:
    # as the container sees it: the key file exists (promtool checks it), rules beside it
    config = (PROMETHEUS / "prometheus.yml").read_text()
    secrets = set(re.findall(r"/run/secrets/([\w.-]+)", config))
    assert secrets <= compose.service_secrets(compose.SERVICES["prometheus"])
    for name in secrets:
        (tmp_path / name).write_text("tke_0000000000000000_stand-in\n")
        config = config.replace(f"/run/secrets/{name}", str(tmp_path / name))
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(config)
    assert "SUCCESS" in run_promtool("check", "config", str(tmp_path / "prometheus.yml"))


def test_prometheus_scrapes_every_engine_process_where_it_listens() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["tokengine-worker"]
    [discovery] = worker["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert discovery["port"] == int(compose.environment("worker")["TOKENGINE_API_PORT"])
    assert worker["authorization"]["credentials_file"] == "/run/secrets/prometheus-metrics-key"
    for name in ("sink", "connectors"):
        port = compose.environment(name)["TOKENGINE_METRICS_PORT"]
        [static] = jobs[f"tokengine-{name}"]["static_configs"]
        assert static["targets"] == [f"{name}:{port}"]
    mounts = compose.SERVICES["prometheus"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in mounts
    assert all((PROMETHEUS / f).exists() for f in config["rule_files"])


# -- Grafana --------------------------------------------------------------------------------


def test_grafana_is_provisioned_with_the_prometheus_and_the_dashboard() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "tokengine.yml").read_text())
    [provider] = providers["providers"]
    mounts = dict(v.split(":")[:2] for v in compose.SERVICES["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    expressions = " ".join(dashboard_expressions())
    for what, metric in WATCHED.items():
        assert metric in expressions, f"no panel shows {what}"
        assert metric in " ".join(rule_expressions()), f"no alert watches {what}"


def register_metrics_key(settings, secrets: Path) -> subprocess.CompletedProcess:
    """The `metrics-key` job, with these settings instead of the compose file's."""
    job = compose.SERVICES["metrics-key"]
    files = [str(secrets / Path(arg).name) for arg in job["command"][2:]]
    script = DEPLOY / "engine" / "register-metrics-key.py"
    env = {**os.environ, **settings.as_environ()}
    argv = [sys.executable, str(script), *files]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_every_metric_named_is_one_the_engine_serves(settings, start_worker, tmp_path) -> None:
    worker = start_worker()
    # Prometheus's key: made by `make deploy-secrets`, put on api-keys by the metrics-key job
    secrets = tmp_path / "secrets"
    make = [sys.executable, str(MAKE_SECRETS), "--dir", str(secrets)]
    subprocess.run(make, check=True, capture_output=True)
    for _ in range(2):  # every `docker compose up` runs the job again
        ran = register_metrics_key(settings, secrets)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    token = read_secret_file(secrets / "prometheus-metrics-key")
    assert token not in ran.stdout + ran.stderr
    served = exported_names(call_text(f"{worker.api_url}/metrics", key=token))
    # the sink and the connectors: their own /metrics (tokengine.cli.running.serve_metrics)
    closed = f"http://127.0.0.1:{free_port()}"  # a node that is not there: the watcher retries
    started = [
        start_process(settings, "sink", tmp_path),
        start_process(settings, "connectors", tmp_path, eth_rpc=closed),
    ]
    try:
        for process, port in started:
            text = wait_for_text(f"http://127.0.0.1:{port}/metrics", process)
            assert "process_cpu_seconds_total" in text
            served |= exported_names(text)
    finally:
        for process, _ in started:
            process.stop()
    assert "token_engine_watcher_block" in served  # the connectors' own registry
    named = {
        m for expr in rule_expressions() + dashboard_expressions() for m in METRIC.findall(expr)
    }
    assert named, "no token_engine_ metric named"
    assert not named - served, f"not served by any engine process: {sorted(named - served)}"
    for expr in rule_expressions() + dashboard_expressions():
        assert METRIC.search(expr) or re.search(r"\bup\b", expr), expr


# -- make deploy-secrets --------------------------------------------------------------------


def test_make_deploy_secrets_makes_every_mounted_file_once(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    command = [sys.executable, str(MAKE_SECRETS), "--dir", str(directory)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".gitignore"}
    assert set(files) == set(compose.COMPOSE["secrets"]), "one file per compose secret"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in files:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
        assert files[name].decode().strip() not in first.stdout, f"{name} was printed"
    (directory / "kafka-sink-password").unlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert "made  " + str(directory / "kafka-sink-password") in again.stdout
    for name, content in files.items():
        if name != "kafka-sink-password":
            assert (directory / name).read_bytes() == content, f"{name} was replaced"
    # in the engine's formats
    RecordKeys.read(directory / "record-keys.json")
    host, port, database, user, password = read_secret_file(directory / "pgpass").split(":")
    url = compose.urlparse(compose.environment("worker")["TOKENGINE_DATABASE_URL"])
    assert (host, int(port), user) == (url.hostname, url.port, url.username) and database == "*"
    assert password == read_secret_file(directory / "postgres-password")
    token = read_secret_file(directory / "prometheus-metrics-key")
    record = json.loads((directory / "prometheus-metrics-key.json").read_text())
    assert record["role"] == AUDITOR and record["secret_sha256"] == access.secret_sha256(token)
    assert access.key_id_of(token) == record["key_id"]
    for user in compose.environment("kafka-1")["SCRAM_USERS"].split():
        assert re.fullmatch(r"[0-9a-f]{64}", read_secret_file(directory / f"kafka-{user}-password"))
    assert (DEPLOY / "secrets" / ".gitignore").read_text() == "*\n!.gitignore\n"


def test_the_metrics_key_job_runs_the_script_on_the_made_files() -> None:
    job = compose.SERVICES["metrics-key"]
    script = job["command"][1]
    assert job["command"][0] == "python"
    assert f"./deploy/engine/register-metrics-key.py:{script}:ro" in job["volumes"]
    files = [arg.removeprefix(compose.RUN_SECRETS) for arg in job["command"][2:]]
    assert files == ["prometheus-metrics-key", "prometheus-metrics-key.json"]
    assert set(files) <= compose.service_secrets(job)
    ran = subprocess.run(
        [sys.executable, str(DEPLOY / "engine" / "register-metrics-key.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode != 0 and "KEY_FILE RECORD_FILE" in ran.stderr


# -- the Kafka entrypoints, against stand-ins ---------------------------------------------


def test_the_broker_entrypoint_renders_the_cluster_and_formats_every_user(tmp_path) -> None:
    secrets = tmp_path / "secrets"
    subprocess.run(
        [sys.executable, str(MAKE_SECRETS), "--dir", str(secrets)], check=True, capture_output=True
    )
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool in ("kafka-storage.sh", "kafka-server-start.sh"):
        write_stand_in(bin_dir / tool, log)
    env = {
        **compose.environment("kafka-1"),
        "PATH": os.environ["PATH"],
        "BROKER_RUNTIME_DIR": str(tmp_path / "run"),
        "SECRETS_DIR": str(secrets),
        "BROKER_BIN_DIR": str(bin_dir),
        "KAFKA_LOG_DIRS": str(tmp_path / "data"),  # never formatted: the format runs
    }
    entrypoint = compose.SERVICES["kafka-1"]["entrypoint"]
    assert entrypoint == ["bash", "/deploy/broker-entrypoint.sh"]
    script = DEPLOY / "kafka" / "broker-entrypoint.sh"
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    properties = dict(
        line.split("=", 1)
        for line in (tmp_path / "run" / "server.properties").read_text().splitlines()
    )
    assert stat.S_IMODE((tmp_path / "run" / "server.properties").stat().st_mode) == 0o600
    assert properties["super.users"] == "User:broker;User:admin"
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["min.insync.replicas"] == "2"
    assert properties["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert properties["transaction.state.log.min.isr"] == "2"
    assert "opts" not in " ".join(properties)
    broker = read_secret_file(secrets / "kafka-broker-password")
    assert (
        f'user_broker="{broker}"' in properties["listener.name.controller.plain.sasl.jaas.config"]
    )
    assert (
        f'password="{broker}"'
        in properties["listener.name.internal.scram-sha-512.sasl.jaas.config"]
    )
    for listener in ("client", "external"):
        jaas = properties[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
        assert "password" not in jaas  # the server side of SCRAM holds no password
    recorded, start_call = calls(log)
    # the passwords reach kafka-storage.sh in a file it reads, never on its command line
    [from_file] = [a for a in recorded if a.startswith("@")]
    assert not Path(from_file[1:]).exists()  # removed once the storage is formatted
    format_call = [a for a in recorded if not a.startswith("@")]
    assert format_call[:6] == [
        "format",
        "--config",
        str(tmp_path / "run" / "server.properties"),
        "--cluster-id",
        env["CLUSTER_ID"],
        "--ignore-formatted",
    ]
    assert format_call[6::2] == ["--add-scram"] * len(env["SCRAM_USERS"].split())
    added = format_call[7::2]
    expected = [
        f"SCRAM-SHA-512=[name={u},password={read_secret_file(secrets / f'kafka-{u}-password')}]"
        for u in env["SCRAM_USERS"].split()
    ]
    assert added == expected
    assert start_call == [str(tmp_path / "run" / "server.properties")]
    # a formatted volume is started as it is: no format, no password read into a file
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("version=1\n")
    log.unlink()
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    assert calls(log) == [[str(tmp_path / "run" / "server.properties")]]


def test_the_acl_script_calls_kafka_acls_as_it_reads(tmp_path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka-admin-password").write_text("a" * 64 + "\n")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    write_stand_in(bin_dir / "kafka-acls.sh", log)
    env = {
        **compose.environment("acls"),
        "PATH": os.environ["PATH"],
        "ACLS_RUNTIME_DIR": str(tmp_path / "run"),
        "SECRETS_DIR": str(secrets),
        "ACLS_BIN_DIR": str(bin_dir),
    }
    subprocess.run(
        ["bash", str(DEPLOY / "kafka" / "acls.sh")],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    config = (tmp_path / "run" / "admin.properties").read_text()
    assert 'username="admin" password="' + "a" * 64 + '"' in config
    admin = ["--command-config", str(tmp_path / "run" / "admin.properties")]
    made = []
    for argv in calls(log):
        assert argv[:5] == ["--bootstrap-server", env["KAFKA_BOOTSTRAP"], *admin, "--add"]
        flag, principal, pattern_flag, pattern, *rest = argv[5:]
        assert (flag, pattern_flag) == ("--allow-principal", "--resource-pattern-type")
        if rest[0] == "--cluster":
            resource, name, operations = "cluster", "kafka-cluster", rest[1:]
        else:
            resource, name, operations = rest[0].removeprefix("--"), rest[1], rest[2:]
        assert operations[::2] == ["--operation"] * (len(operations) // 2), argv
        made.append(
            (principal.removeprefix("User:"), resource, pattern, name, set(operations[1::2]))
        )
    # what runs is what tests/test_compose.py read from the script's `allow` lines
    assert made == compose.acl_grants()
