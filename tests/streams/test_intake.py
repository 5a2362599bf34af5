"""Intake: valid inputs become ledger commands; garbage becomes a dead letter with its reason."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from prometheus_client import REGISTRY

from core.assets import load_assets
from core.fields import TREASURY_ACCOUNT
from streams.intake import Source, route
from streams.intake_process import CounterRelay
from tests.helpers import produce, read_topic
from tests.http import call_text
from tests.processes import alive, command_line, descendants
from tests.record_auth import AUTH, signed
from tests.streams.test_ledger_worker import wait_for
from topics import catalogue
from topics.codec import SingleObjectCodec
from topics.partitioning import partition_for

ASSETS = load_assets(Path("core/assets.toml"))
ETH_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def withdrawal(request_id: str, amount: str = "1", asset: str = "ETH") -> dict:
    return {
        "request_id": request_id,
        "account_id": "alice",
        "asset": asset,
        "amount": Decimal(amount),
        "destination_address": ETH_ADDRESS,
        "created_at": NOW,
    }


def source(topic: str, value: bytes, offset: int = 5) -> Source:
    return Source(topic, 3, offset, b"alice", value, signed(topic, b"alice", value))


def test_a_valid_request_becomes_one_ledger_command() -> None:
    codec = SingleObjectCodec()
    value = codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-1"))
    [output] = route(source(catalogue.WITHDRAWAL_REQUESTS, value), codec, ASSETS, NOW, AUTH)
    assert (output.topic, output.key) == (catalogue.LEDGER_COMMANDS, "alice")
    command = codec.decode(catalogue.LEDGER_COMMANDS, output.value)
    assert command["command_id"] == "request:w-1"
    assert command["kind"] == "WITHDRAWAL_REQUEST"
    assert command["payload"] == value
    assert (command["source_partition"], command["source_offset"]) == (3, 5)


def test_a_sweeps_final_result_is_one_command_of_the_treasury_record() -> None:
    codec = SingleObjectCodec()
    result = {
        "sweep_id": "ethereum:0xd1:0", "chain": "ethereum", "asset": "ETH",
        "from_address": "0xd1", "to_address": "0xh0", "to_role": "HOT",
        "amount": Decimal("0.99"), "status": "CONFIRMED", "tx_hash": "0xsw", "nonce": 0,
        "raw_transaction": "0x00", "network_fee": Decimal("0.01"), "network_fee_asset": "ETH",
        "reason": None, "detail": None, "reported_at": NOW,
    }  # fmt: skip
    treasury = partition_for(TREASURY_ACCOUNT, catalogue.ACCOUNT_PARTITIONS)

    def routed(value: dict, partition: int = treasury) -> list:
        data = codec.encode(catalogue.SWEEP_RESULTS, value)
        headers = signed(catalogue.SWEEP_RESULTS, b"treasury", data)
        at = Source(catalogue.SWEEP_RESULTS, partition, 7, b"treasury", data, headers)
        return route(at, codec, ASSETS, NOW, AUTH)

    [output] = routed(result)
    command = codec.decode(catalogue.LEDGER_COMMANDS, output.value)
    assert (output.key, command["kind"]) == (TREASURY_ACCOUNT, "SWEEP_RESULT")
    assert command["command_id"] == "sweep:ethereum:0xd1:0"  # one id whatever its status
    assert routed({**result, "status": "SUBMITTED"}) == []  # nothing for the ledger yet
    for bad, reason in (
        ({**result, "network_fee": Decimal("-0.01")}, "invalid_amount"),
        (result, "wrong_partition"),  # keyed by anything but the treasury
    ):
        partition = treasury if bad is not result else (treasury + 1) % 8
        [letter] = routed(bad, partition)
        assert letter.topic == catalogue.DEAD_LETTERS
        assert codec.decode(catalogue.DEAD_LETTERS, letter.value)["reason"] == reason


def test_garbage_becomes_a_dead_letter_with_the_original_bytes() -> None:
    codec = SingleObjectCodec()
    [output] = route(
        source(catalogue.WITHDRAWAL_REQUESTS, b"\x00garbage"), codec, ASSETS, NOW, AUTH
    )
    assert output.topic == catalogue.DEAD_LETTERS
    letter = codec.decode(catalogue.DEAD_LETTERS, output.value)
    assert letter["value"] == b"\x00garbage"
    assert letter["reason"] == "undecodable"
    assert (letter["source_topic"], letter["source_offset"]) == (catalogue.WITHDRAWAL_REQUESTS, 5)


def test_a_decodable_but_invalid_request_is_dead_lettered_and_rejected() -> None:
    codec = SingleObjectCodec()
    value = codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-2", asset="DOGE"))
    outputs = route(source(catalogue.WITHDRAWAL_REQUESTS, value), codec, ASSETS, NOW, AUTH)
    assert [o.topic for o in outputs] == [catalogue.DEAD_LETTERS, catalogue.REQUEST_RESULTS]
    result = codec.decode(catalogue.REQUEST_RESULTS, outputs[1].value)
    assert (result["status"], result["reason"]) == ("REJECTED", "unknown_asset")


def test_worker_dead_letters_garbage_and_keeps_the_partition_moving(settings, start_worker):
    start_worker()
    codec = SingleObjectCodec()
    produce(settings, catalogue.WITHDRAWAL_REQUESTS, "alice", b"\x00\x01 not avro")
    produce(
        settings,
        catalogue.WITHDRAWAL_REQUESTS,
        "alice",
        codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-after-garbage")),
    )
    [letter] = read_topic(settings, catalogue.DEAD_LETTERS, until_count=1)
    assert letter["value"]["reason"] == "undecodable"
    assert letter["value"]["value"] == b"\x00\x01 not avro"
    assert letter["value"]["source_topic"] == catalogue.WITHDRAWAL_REQUESTS
    commands = read_topic(settings, catalogue.LEDGER_COMMANDS, until_count=1)
    assert commands[0]["value"]["command_id"] == "request:w-after-garbage"


def test_the_worker_relays_its_intake_process_counters_and_restarts_it(settings, start_worker):
    worker = start_worker()
    produce(settings, catalogue.WITHDRAWAL_REQUESTS, "alice", b"\x00 garbage")
    # the intake process counted the dead letter; the worker's /metrics shows it
    wait_for(
        lambda: DEAD_LETTER_METRIC in call_text(f"{worker.api_url}/metrics"),
        what="the intake process's counters in the worker's /metrics",
    )
    [first] = intake_processes(worker)
    os.kill(first, signal.SIGKILL)  # a crash of the intake process alone
    wait_for(lambda: intake_processes(worker) not in ([], [first]), what="a new intake process")
    codec = SingleObjectCodec()
    value = codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-after-restart"))
    produce(settings, catalogue.WITHDRAWAL_REQUESTS, "alice", value)
    commands = read_topic(settings, catalogue.LEDGER_COMMANDS, until_count=1)
    assert [c["value"]["command_id"] for c in commands] == ["request:w-after-restart"]
    # the worker dies (SIGKILL to it alone): its intake process sees its input end, and stops
    [second] = intake_processes(worker)
    os.kill(worker.process.process.pid, signal.SIGKILL)
    wait_for(lambda: not alive(second), what="the intake process to stop")


def test_counter_relay_adds_the_growth_of_each_total() -> None:
    labels = {"component": "intake", "reason": "relay_test"}

    def value() -> float:
        return REGISTRY.get_sample_value("token_engine_dead_letters_total", labels) or 0.0

    before = value()
    relay = CounterRelay()
    relay.add([["dead_letters", labels, 2.0]])
    relay.add([["dead_letters", labels, 5.0]])
    relay.add([["dead_letters", labels, 5.0]])
    assert value() - before == 5.0


DEAD_LETTER_METRIC = 'token_engine_dead_letters_total{component="intake",reason="undecodable"} 1.0'


def intake_processes(worker) -> list[int]:
    """The worker's running intake processes."""
    return [
        pid
        for pid in descendants(worker.process.process.pid)
        if alive(pid) and "streams.intake_process" in command_line(pid)
    ]
