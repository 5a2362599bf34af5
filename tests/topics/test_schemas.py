"""Every Avro schema round-trips; old data stays readable by newer readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from topics import catalogue
from topics.codec import ConfluentCodec, DecodeError, SingleObjectCodec
from topics.schemas import AVRO_DIR, SchemaStore, default_store

SCHEMA_NAMES = sorted(default_store().current)


def sample(avro_type, name: str = "x"):
    """A non-trivial value of an Avro type (first non-null branch of unions)."""
    if isinstance(avro_type, list):
        return sample(next(t for t in avro_type if t != "null"), name)
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return Decimal("12345.000000000000000001")
        if logical == "timestamp-millis":
            return datetime(2026, 11, 21, 12, 30, 15, 123000, tzinfo=UTC)
        kind = avro_type["type"]
        if kind == "record":
            return {f["name"]: sample(f["type"], f["name"]) for f in avro_type["fields"]}
        if kind == "enum":
            return avro_type["symbols"][-1]
        if kind == "array":
            return [sample(avro_type["items"], name), sample(avro_type["items"], name)]
        if kind == "map":
            return {"k1": sample(avro_type["values"], name)}
        return sample(kind, name)
    return {
        "string": f"{name}-value",
        "long": 2**40 + 7,
        "int": 7,
        "bytes": b"\x00\xffraw",
        "boolean": True,
    }[avro_type]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_round_trips_exactly(name: str) -> None:
    codec = SingleObjectCodec()
    record = sample(default_store()[name].source)
    encoded = codec.encode_schema(name, record)
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == default_store()[name].fingerprint
    assert codec.decode_schema(name, encoded) == record


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_field_has_a_doc_and_no_float(name: str) -> None:
    text = (AVRO_DIR / f"{name}.avsc").read_text()
    assert '"float"' not in text and '"double"' not in text

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "record":
                assert node.get("doc"), f"{node['name']} has no doc"
                for field in node["fields"]:
                    assert field.get("doc"), f"{node['name']}.{field['name']} has no doc"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))


def test_catalogue_and_schemas_agree() -> None:
    used = {spec.value_schema for spec in catalogue.TOPICS}
    assert used <= set(SCHEMA_NAMES)
    assert len({spec.name for spec in catalogue.TOPICS}) == len(catalogue.TOPICS)


def test_reader_with_an_added_defaulted_field_reads_old_data() -> None:
    store = SchemaStore()
    new = json.loads((AVRO_DIR / "WithdrawalRequest.avsc").read_text())
    old = json.loads(json.dumps(new))
    new["fields"].append({"name": "memo", "type": "string", "default": "", "doc": "Added later."})
    store.current["WithdrawalRequest"] = store.register_writer(new)
    old_schema = store.register_writer(old)
    codec = SingleObjectCodec(store)
    record = sample(old)
    old_bytes = SingleObjectCodec().encode_schema("WithdrawalRequest", record)
    assert old_bytes[2:10] == old_schema.fingerprint
    decoded = codec.decode_schema("WithdrawalRequest", old_bytes)
    assert decoded == {**record, "memo": ""}


def test_garbage_is_a_decode_error_with_a_reason() -> None:
    codec = SingleObjectCodec()
    good = codec.encode_schema("Alert", sample(default_store()["Alert"].source))
    cases = {
        b"": "empty_value",
        b"not avro at all": "undecodable",
        b"\xc3\x01" + b"\x00" * 8 + b"x": "unknown_schema",
        good[:-3]: "undecodable",
        good + b"trailing": "undecodable",
    }
    for data, reason in cases.items():
        with pytest.raises(DecodeError) as caught:
            codec.decode_schema("Alert", data)
        assert caught.value.reason == reason, data
    with pytest.raises(DecodeError) as caught:
        codec.decode_schema("DeadLetter", good)
    assert caught.value.reason == "wrong_schema"


def test_confluent_wire_format_round_trips() -> None:
    # the library's in-memory registry (mock://) stands in for the compose file's registry
    codec = ConfluentCodec("mock://tokengine-test", "tokengine.")
    record = sample(default_store()["DepositRequest"].source)
    encoded = codec.encode(catalogue.DEPOSIT_REQUESTS, record)
    assert encoded[0] == 0 and len(encoded) > 5
    assert codec.decode(catalogue.DEPOSIT_REQUESTS, encoded) == record
    with pytest.raises(DecodeError):
        codec.decode(catalogue.DEPOSIT_REQUESTS, b"\xc3\x01garbage")
