"""`make deploy-secrets`: every secret file docker-compose.kafka.yml mounts, made once.

Writes them into deploy/secrets/ (or --dir DIR): the directory 0700, every file 0600,
passwords random (32 bytes, hex: safe inside JAAS lines, SCRAM arguments and pgpass). A
file that exists is never replaced, so running it again only adds what is missing; to
change a secret, see "Running on a real cluster" in the README (a Kafka user's password,
for one, lives in the brokers' metadata from their first start on).

Made with the engine's own code where the engine defines the format: the record keys
(`topics.authentication.RecordKeys.load_or_create`), Prometheus's API key and its ApiKey
record (`core.access.new_key`, an AUDITOR key; the `metrics-key` job publishes the record),
the Ethereum payout keystore (`eth_account`, as `tokengine up` makes its own). Prints what
it made or kept and the payout address to fund; never a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the engine's packages, when run as `python deploy/...`

from core import access  # noqa: E402
from tokengine.cli.arguments import owner_actor  # noqa: E402
from topics.authentication import RecordKeys  # noqa: E402

DEFAULT_DIR = ROOT / "deploy" / "secrets"
# The Kafka users (SCRAM, created when the brokers first format their storage)
KAFKA_USERS = (
    "broker",
    "admin",
    "worker",
    "connectors",
    "sink",
    "schema-registry",
    "upstream",
    "downstream",
    "ui",
)
PASSWORDS = (
    *(f"kafka-{user}-password" for user in KAFKA_USERS),
    "postgres-password",
    "grafana-admin-password",
    "ui-login-password",
)
# what the libpq password file says: the compose file's Postgres service and user
PGPASS_HOST, PGPASS_PORT, PGPASS_USER = "postgres", 5432, "tokengine"
PASSWORD_BYTES = 32
FILES = (
    *PASSWORDS,
    "pgpass",
    "record-keys.json",
    "eth-keystore.json",
    "eth-keystore.password",
    "prometheus-metrics-key",
    "prometheus-metrics-key.json",
)


def write_new(path: Path, text: str) -> bool:
    """`text` in a new 0600 file; False (and nothing written) when the file exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    return True


def pair_missing(directory: Path, first: str, second: str) -> bool:
    """Whether both files of a pair are missing; one without the other is refused."""
    present = [(directory / name).exists() for name in (first, second)]
    if all(present):
        return False
    if any(present):
        missing = second if present[0] else first
        raise SystemExit(f"{directory / missing} is missing but its pair exists: remove both")
    return True


def make_secrets(directory: Path) -> dict[str, str]:
    """Every file of FILES in `directory`; returns {file: 'made' | 'kept'}."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    write_new(directory / ".gitignore", "*\n!.gitignore\n")
    outcome: dict[str, str] = {}
    for name in PASSWORDS:
        made = write_new(directory / name, secrets.token_hex(PASSWORD_BYTES) + "\n")
        outcome[name] = "made" if made else "kept"

    password = (directory / "postgres-password").read_text().strip()
    line = f"{PGPASS_HOST}:{PGPASS_PORT}:*:{PGPASS_USER}:{password}\n"
    outcome["pgpass"] = "made" if write_new(directory / "pgpass", line) else "kept"

    keys_path = directory / "record-keys.json"
    existed = keys_path.exists()
    RecordKeys.load_or_create(keys_path)
    outcome["record-keys.json"] = "kept" if existed else "made"

    if pair_missing(directory, "prometheus-metrics-key", "prometheus-metrics-key.json"):
        now = datetime.now(UTC)
        token, record = access.new_key(access.AUDITOR, [], "prometheus", owner_actor(), now)
        record["changed_at"] = record["changed_at"].isoformat()
        write_new(directory / "prometheus-metrics-key.json", json.dumps(record, indent=2) + "\n")
        write_new(directory / "prometheus-metrics-key", token + "\n")
        outcome["prometheus-metrics-key"] = outcome["prometheus-metrics-key.json"] = "made"
    else:
        outcome["prometheus-metrics-key"] = outcome["prometheus-metrics-key.json"] = "kept"

    if pair_missing(directory, "eth-keystore.json", "eth-keystore.password"):
        from eth_account import Account

        account = Account.create()
        keystore_password = secrets.token_hex(PASSWORD_BYTES)
        keystore = json.dumps(Account.encrypt(account.key, keystore_password))
        write_new(directory / "eth-keystore.password", keystore_password + "\n")
        write_new(directory / "eth-keystore.json", keystore + "\n")
        outcome["eth-keystore.json"] = outcome["eth-keystore.password"] = "made"
    else:
        outcome["eth-keystore.json"] = outcome["eth-keystore.password"] = "kept"
    for name in FILES:
        (directory / name).chmod(0o600)  # a kept file, too, is the owner's alone
    return outcome


def payout_address(directory: Path) -> str:
    address = json.loads((directory / "eth-keystore.json").read_text())["address"]
    return "0x" + address.removeprefix("0x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where (deploy/secrets)")
    directory = parser.parse_args().dir
    for name, what in make_secrets(directory).items():
        print(f"{what:5} {directory / name}")
    print(f"Ethereum payout address (fund it on the chain): {payout_address(directory)}")


if __name__ == "__main__":
    main()
