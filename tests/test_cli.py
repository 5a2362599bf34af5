"""The CLI against the real broker: submit validates and produces, tail decodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.config import Settings
from tests.helpers import read_topic

ETH_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"


def cli(settings: Settings, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_environ()}
    return subprocess.run(
        [sys.executable, "-m", "tokengine", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout_s,
    )


def refused_in_one_line(settings: Settings, cases: list[tuple[list[str], str]]) -> None:
    """Each command exits 2 with one line of error naming its field."""
    for args, field in cases:
        result = cli(settings, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and field in lines[0], (args, result.stderr)


def test_submit_then_tail_shows_the_decoded_request(settings: Settings) -> None:
    request = {
        "account_id": "alice",
        "asset": "ETH",
        "amount": "1.25",
        "destination_address": ETH_ADDRESS,
        "request_id": "w-1",
    }
    submitted = cli(settings, "submit", "withdrawal", "--json", json.dumps(request))
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "w-1"
    tailed = cli(settings, "tail", "withdrawal-requests", "--from-beginning", "--max", "1")
    assert tailed.returncode == 0, tailed.stderr
    line = json.loads(tailed.stdout.splitlines()[0])
    assert line["key"] == "alice"
    assert line["value"]["request_id"] == "w-1"
    assert line["value"]["amount"] == "1.25"


def test_submit_from_a_file(settings: Settings, tmp_path) -> None:
    path = tmp_path / "deposit.json"
    path.write_text(
        json.dumps(
            {
                "account_id": "bob",
                "asset": "WEI",
                "amount": "3",
                "tx_hash": "ab" * 32,
                "output_index": 1,
            }
        )
    )
    submitted = cli(settings, "submit", "deposit", "--json", f"@{path}")
    assert submitted.returncode == 0, submitted.stderr
    records = read_topic(settings, "deposit-requests", until_count=1)
    assert records[0]["value"]["output_index"] == 1


def test_bad_input_is_one_line_naming_the_field_exit_2_nothing_produced(settings) -> None:
    cases = [
        (["submit", "withdrawal", "--json", "{not json"], "--json"),
        (
            [
                "submit",
                "withdrawal",
                "--json",
                json.dumps(
                    {
                        "account_id": "a",
                        "asset": "ETH",
                        "amount": "abc",
                        "destination_address": ETH_ADDRESS,
                    }
                ),
            ],
            "amount",
        ),
        (["submit", "withdrawal", "--json", json.dumps({"asset": "ETH"})], "account_id"),
        (["submit", "refund", "--json", "{}"], "KIND"),
        (["submit", "deposit", "--json", "@/nonexistent.json"], "--json"),
        (["tail", "no-such-topic"], "TOPIC"),
    ]
    refused_in_one_line(settings, cases)
    assert read_topic(settings, "withdrawal-requests", timeout_s=2) == []
    assert read_topic(settings, "deposit-requests", timeout_s=1) == []


def test_hostile_cli_input_is_one_line_exit_2_and_nothing_produced(settings) -> None:
    cases = [
        (["price", "ETH", "0"], "USD_PRICE"),  # every deposit would need the fewest confirmations
        (["price", "ETH", "--", "-5"], "USD_PRICE"),
        (["price", "ETH", "NaN"], "USD_PRICE"),  # a traceback
        (["price", "ETH", "1e400"], "USD_PRICE"),
        (["price", "DOGE", "1"], "ASSET"),
        (["bind", "--chain", "bank", "--address", "", "--account", "mallory"], "--address"),
        (["bind", "--chain", "ethereum", "--address", "0x1", "--account", "a"], "--address"),
        (
            ["bind", "--chain", "ethereum", "--address", ETH_ADDRESS, "--account", "clearing:ETH"],
            "--account",
        ),
        (
            [
                "submit",
                "withdrawal",
                "--json",
                json.dumps(
                    {
                        "account_id": "a",
                        "asset": "ETH",
                        "amount": "1e400",
                        "destination_address": ETH_ADDRESS,
                    }
                ),
            ],
            "amount",
        ),
        (["submit", "withdrawal", "--json", "[" * 100_000], "--json"),
    ]
    refused_in_one_line(settings, cases)
    for topic in ("prices", "address-bindings", "withdrawal-requests"):
        assert read_topic(settings, topic, timeout_s=1) == []


def test_bind_refuses_to_move_a_bound_address_to_another_account(settings) -> None:
    first = cli(settings, "bind", "--chain", "bank", "--address", "TKE-ALICE", "--account", "alice")
    assert first.returncode == 0, first.stderr
    again = cli(settings, "bind", "--chain", "bank", "--address", "tke-alice", "--account", "alice")
    assert again.returncode == 0, again.stderr  # the same binding again changes nothing
    moved = cli(settings, "bind", "--chain", "bank", "--address", "TKE-ALICE", "--account", "eve")
    assert moved.returncode == 2 and "already bound" in moved.stderr
    bindings = read_topic(settings, "address-bindings", timeout_s=2)
    assert {b["value"]["account_id"] for b in bindings} == {"alice"}
