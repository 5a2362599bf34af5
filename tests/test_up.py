"""`tokengine up` (what `make run` runs): ready line within 60 s, an ETH deposit on the local
node credited and shown by `tokengine balances`, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import alive, descendants, start_up

READY_PATTERN = re.compile(
    r"^ready: kafka=(127\.0\.0\.1:\d+) postgres=postgresql://\S+ eth=(http://127\.0\.0\.1:\d+) "
    r"api=http://127\.0\.0\.1:(\d+)( btc=http://\S+)?( prometheus=http://127\.0\.0\.1:\d+)?$"
)
READY_LIMIT_S = 60.0


def test_up_prints_ready_and_stops_everything_on_sigterm(tmp_path) -> None:
    started = time.monotonic()
    up, lines, env = start_up(Path("var"), cwd=tmp_path)  # relative, as `make run`'s is
    env["TOKENGINE_DATA_DIR"] = str(tmp_path / "var")  # for the CLI calls made from here
    try:
        elapsed = time.monotonic() - started
        assert READY_PATTERN.match(lines[-1]), "\n".join(lines)
        assert elapsed < READY_LIMIT_S
        children = descendants(up.pid)
        assert len(children) >= 6  # tansu, postgres, anvil, the sink, the connectors, a worker
        kafka, eth = READY_PATTERN.match(lines[-1]).groups()[:2]
        prometheus = re.search(r" prometheus=(\S+)$", lines[-1])
        assert prometheus, "Debian's prometheus is installed by `make deps`: it must run"
        deposit_on_the_local_node_is_credited({**env, "TOKENGINE_KAFKA": kafka}, eth)
        prometheus_scrapes_every_process_with_the_rules(prometheus.group(1))
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
        assert "stopped" in up.stdout.read()
        leftovers = [pid for pid in children if alive(pid)]
        assert not leftovers, f"processes left running: {leftovers}"
    finally:
        if up.poll() is None:
            up.kill()


def tokengine(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tokengine", *args], env=env, text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def deposit_on_the_local_node_is_credited(env: dict[str, str], eth_rpc: str) -> None:
    from decimal import Decimal

    from eth_account import Account
    from web3 import Web3

    address = Account.create().address
    tokengine(env, "bind", "--chain", "ethereum", "--address", address, "--account", "zoe")
    tokengine(env, "price", "ETH", "3000")  # 0.01 ETH = 30 USD: one confirmation
    w3 = Web3(Web3.HTTPProvider(eth_rpc))
    w3.eth.send_transaction({"from": w3.eth.accounts[1], "to": address, "value": 10**16})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = json.loads(tokengine(env, "balances", "--account", "zoe", "--json"))
        if shown:
            assert Decimal(shown[0]["balance"]) == Decimal("0.01") and shown[0]["asset"] == "ETH"
            return
        time.sleep(0.5)
    raise AssertionError("the deposit on the local node was not credited")


def prometheus_scrapes_every_process_with_the_rules(url: str) -> None:
    """The embedded Prometheus scrapes the worker (with its key), the sink and the
    connectors, and has loaded the deployment's alert rules."""
    import urllib.request

    def get(path: str) -> dict:
        with urllib.request.urlopen(url + path, timeout=5) as response:
            return json.loads(response.read())["data"]

    deadline = time.monotonic() + 30
    while True:
        targets = get("/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if set(health.values()) == {"up"} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health == dict.fromkeys(
        ["tokengine-worker", "tokengine-sink", "tokengine-connectors"], "up"
    ), targets
    rules = [r["name"] for g in get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert "TokEngineCircuitBreakerOpen" in rules, rules
