"""The embedded Prometheus of `tokengine up`: the same alert rules as the deployment
(`deploy/prometheus/rules.yml`), scraping every worker (with an auditor key `up` keeps in
DATA_DIR/secrets/prometheus.key), the sink and the connectors, on a free loopback port;
its data kept under DATA_DIR/services/prometheus. Started when Debian's `prometheus` is
installed (`make deps` does not need it; the ready line says where it is)."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import yaml

from tokengine.processes import REPO_ROOT, ManagedProcess, await_ready, free_port

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
SCRAPE_INTERVAL = "5s"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def scrape_config(
    workers: list[str], sink: str | None, connectors: str | None, key_file: Path
) -> dict:
    """Prometheus's configuration: one job per kind of process, named as in the deployment."""
    jobs = [
        {
            "job_name": "tokengine-worker",
            "authorization": {"type": "Bearer", "credentials_file": str(key_file)},
            "static_configs": [{"targets": workers}],
        }
    ]
    for job, target in (("tokengine-sink", sink), ("tokengine-connectors", connectors)):
        if target:
            jobs.append({"job_name": job, "static_configs": [{"targets": [target]}]})
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }


def start_prometheus(state_dir: Path, config: dict) -> tuple[str, ManagedProcess]:
    """Prometheus on a free loopback port with `config`, its data in `state_dir`."""
    binary = prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus")
    state_dir.mkdir(parents=True, exist_ok=True)
    config_file = state_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={state_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = ManagedProcess.start("prometheus", argv, state_dir / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    await_ready(process, lambda: _ready(url))
    return url, process


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
