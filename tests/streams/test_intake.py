"""Intake: valid inputs become ledger commands; garbage becomes a dead letter with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from streams.intake import Source, route
from tests.helpers import produce, read_topic
from tokengine.assets import load_assets
from topics import catalogue
from topics.codec import SingleObjectCodec

ASSETS = load_assets(Path("tokengine/assets.toml"))
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
    return Source(topic, 3, offset, b"alice", value)


def test_a_valid_request_becomes_one_ledger_command() -> None:
    codec = SingleObjectCodec()
    value = codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-1"))
    [output] = route(source(catalogue.WITHDRAWAL_REQUESTS, value), codec, ASSETS, NOW)
    assert (output.topic, output.key) == (catalogue.LEDGER_COMMANDS, "alice")
    command = codec.decode(catalogue.LEDGER_COMMANDS, output.value)
    assert command["command_id"] == "request:w-1"
    assert command["kind"] == "WITHDRAWAL_REQUEST"
    assert command["payload"] == value
    assert (command["source_partition"], command["source_offset"]) == (3, 5)


def test_garbage_becomes_a_dead_letter_with_the_original_bytes() -> None:
    codec = SingleObjectCodec()
    [output] = route(source(catalogue.WITHDRAWAL_REQUESTS, b"\x00garbage"), codec, ASSETS, NOW)
    assert output.topic == catalogue.DEAD_LETTERS
    letter = codec.decode(catalogue.DEAD_LETTERS, output.value)
    assert letter["value"] == b"\x00garbage"
    assert letter["reason"] == "undecodable"
    assert (letter["source_topic"], letter["source_offset"]) == (catalogue.WITHDRAWAL_REQUESTS, 5)


def test_a_decodable_but_invalid_request_is_dead_lettered_and_rejected() -> None:
    codec = SingleObjectCodec()
    value = codec.encode(catalogue.WITHDRAWAL_REQUESTS, withdrawal("w-2", asset="DOGE"))
    outputs = route(source(catalogue.WITHDRAWAL_REQUESTS, value), codec, ASSETS, NOW)
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
