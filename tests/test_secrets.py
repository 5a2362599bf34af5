"""Secrets kept secret (issue 21): against one real `tokengine up`, no configured secret
appears in any process's arguments, in the environment of a process that does not need it,
in any log file, or on `up`'s stdout (the `ready:` line included).

`configured_secrets(data_dir, workdir)` gathers every secret; every file under
DATA_DIR/secrets/ counts (JSON files value by value), so a secret added there later is
covered without changing this test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.secrets import MIN_SECRET_LENGTH, passfile_of
from tests.processes import descendants, start_up
from tests.test_up import READY_PATTERN

# public parts of an encrypted keystore: its secret is the key it decrypts to (added below)
KEYSTORE_FILE = "eth-keystore.json"
# only the connectors pay out; these must be in no other process's environment
CONNECTORS_ONLY = "connectors"


def json_strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif isinstance(value, str):
        yield value


def configured_secrets(data_dir: Path, workdir: Path) -> dict[str, str]:
    """Every secret of one `up`: name -> value (DATA_DIR/secrets/*, the node cookie, Postgres)."""
    from eth_account import Account

    found: dict[str, str] = {}
    directory = data_dir / "secrets"
    for path in sorted(directory.iterdir()):
        text = path.read_text().strip()
        if path.name == KEYSTORE_FILE:
            password = (directory / "eth-keystore.password").read_text().strip()
            key = bytes(Account.decrypt(json.loads(text), password)).hex()
            found["eth payout private key"] = key
            continue
        found[path.name] = text
        if path.suffix == ".json":
            for index, value in enumerate(json_strings(json.loads(text))):
                found[f"{path.name}[{index}]"] = value
    cookie = workdir / "bitcoind" / "regtest" / ".cookie"
    if cookie.exists():
        found["bitcoind cookie"] = cookie.read_text().strip().split(":", 1)[1]
    found["postgres password"] = (workdir / "postgres.password").read_text().strip()
    return {name: value for name, value in found.items() if len(value) >= MIN_SECRET_LENGTH}


def connector_secrets(secrets: dict[str, str]) -> dict[str, str]:
    """The secrets only the connectors may hold (the payout keys and the node's cookie)."""
    names = ("eth payout private key", "eth-keystore.password", "btc-payout.wif", "bitcoind")
    return {name: v for name, v in secrets.items() if name.startswith(names)}


def proc_text(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b"\n").decode("latin-1")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def running_up(tmp_path_factory) -> Iterator[dict]:
    data_dir = tmp_path_factory.mktemp("secrets") / "var"
    up, lines, _env = start_up(data_dir)
    try:
        assert READY_PATTERN.match(lines[-1]), "\n".join(lines)
        passfile = passfile_of(lines[-1].split("postgres=", 1)[1].split()[0])
        time.sleep(5)  # a few blocks mined, requests logged: what an idle run writes
        yield {
            "up": up,
            "stdout": "\n".join(lines),
            "data_dir": data_dir,
            "workdir": passfile.parent,
            "pids": descendants(up.pid),
        }
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def test_no_secret_in_any_process_arguments(running_up) -> None:
    secrets = configured_secrets(running_up["data_dir"], running_up["workdir"])
    assert "postgres password" in secrets and "eth payout private key" in secrets
    for pid in [running_up["up"].pid, *running_up["pids"]]:
        arguments = proc_text(pid, "cmdline")
        assert not leaks(arguments, secrets), f"{arguments!r} holds {leaks(arguments, secrets)}"


def test_only_the_connectors_hold_payout_secrets(running_up) -> None:
    secrets = configured_secrets(running_up["data_dir"], running_up["workdir"])
    payout = connector_secrets(secrets)
    assert "eth-keystore.password" in payout and "btc-payout.wif" in payout
    seen_connectors = False
    for pid in running_up["pids"]:
        arguments, environ = proc_text(pid, "cmdline"), proc_text(pid, "environ")
        if CONNECTORS_ONLY in arguments.split("\n"):
            seen_connectors = True
            allowed = payout
        else:
            allowed = {}
        # a secret's value is never in an environment; only the connectors see the files' paths
        assert not leaks(environ, secrets), f"{arguments!r}: {leaks(environ, secrets)}"
        if not allowed:
            assert "TOKENGINE_ETH_KEYSTORE" not in environ, arguments
            assert "TOKENGINE_BTC_PAYOUT_KEY_FILE" not in environ, arguments
            assert "TOKENGINE_BTC_RPC_COOKIE_FILE" not in environ, arguments
    assert seen_connectors


def test_no_secret_in_any_log_or_the_ready_line(running_up) -> None:
    secrets = configured_secrets(running_up["data_dir"], running_up["workdir"])
    assert not leaks(running_up["stdout"], secrets), running_up["stdout"]
    logs = [*(running_up["data_dir"] / "logs").glob("*"), *running_up["workdir"].glob("*.log")]
    assert any(path.name == "connectors.log" for path in logs)
    for path in logs:
        found = leaks(path.read_text(errors="replace"), secrets)
        assert not found, f"{path} holds {found}"


def test_secret_files_are_their_owners_only(running_up) -> None:
    directory = running_up["data_dir"] / "secrets"
    assert directory.stat().st_mode & 0o777 == 0o700
    files = [*directory.iterdir(), running_up["workdir"] / "pgpass"]
    files += [running_up["workdir"] / "postgres.password"]
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
