"""Wire encoding of event values: Avro, one schema per topic (from the catalogue).

Default: the Avro single-object encoding (spec: 0xC3 0x01, the writer schema's 8-byte
CRC-64-AVRO fingerprint, then the binary body). With `TOKENGINE_SCHEMA_REGISTRY` set:
the Confluent wire format through `confluent_kafka.schema_registry`. Either way a value
that cannot be read raises `DecodeError` with a machine-readable reason, which consumers
turn into a dead letter.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import fastavro

from core.reasons import Reason
from topics import catalogue
from topics.schemas import SchemaStore, default_store

SINGLE_OBJECT_MARKER = b"\xc3\x01"
HEADER_SIZE = 10


class DecodeError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Codec(Protocol):
    def encode(self, topic: str, record: dict[str, Any]) -> bytes: ...

    def decode(self, topic: str, data: bytes | None) -> dict[str, Any]: ...


def _describe_encode_error(schema_name: str, record: dict[str, Any], error: Exception) -> str:
    missing = [
        f["name"]
        for f in default_store()[schema_name].source["fields"]
        if f["name"] not in record and "default" not in f
    ]
    if missing:
        return f"{schema_name}: missing field {missing[0]!r}"
    return f"{schema_name}: {error}"


class SingleObjectCodec:
    """Avro single-object encoding with schemas from `avro/`."""

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store or default_store()

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return self.encode_schema(catalogue.spec(topic).value_schema, record)

    def encode_schema(self, schema_name: str, record: dict[str, Any]) -> bytes:
        schema = self.store[schema_name]
        out = io.BytesIO()
        out.write(SINGLE_OBJECT_MARKER)
        out.write(schema.fingerprint)
        try:
            fastavro.schemaless_writer(out, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(_describe_encode_error(schema_name, record, error)) from error
        return out.getvalue()

    def decode(self, topic: str, data: bytes | None) -> dict[str, Any]:
        return self.decode_schema(catalogue.spec(topic).value_schema, data)

    def decode_schema(self, schema_name: str, data: bytes | None) -> dict[str, Any]:
        if not data:
            raise DecodeError(Reason.EMPTY_VALUE, "message has no value")
        if len(data) < HEADER_SIZE or data[:2] != SINGLE_OBJECT_MARKER:
            raise DecodeError(Reason.UNDECODABLE, "not Avro single-object encoded (bad marker)")
        writer = self.store.by_fingerprint.get(data[2:HEADER_SIZE])
        if writer is None:
            raise DecodeError(
                Reason.UNKNOWN_SCHEMA, f"unknown schema fingerprint {data[2:10].hex()}"
            )
        reader = self.store[schema_name]
        if writer.name != reader.name:
            raise DecodeError(Reason.WRONG_SCHEMA, f"expected {reader.name}, got {writer.name}")
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        reader_schema = None if writer is reader else reader.parsed
        try:
            record = fastavro.schemaless_reader(body, writer.parsed, reader_schema)
        except Exception as error:  # fastavro raises many kinds on corrupt input
            raise DecodeError(
                Reason.UNDECODABLE, f"{reader.name}: corrupt Avro body ({error})"
            ) from None
        if body.tell() != len(data):
            raise DecodeError(Reason.UNDECODABLE, f"{reader.name}: trailing bytes after the record")
        return record


class ConfluentCodec:
    """Confluent wire format (magic 0, 4-byte schema id) via a schema registry."""

    def __init__(self, registry_url: str, topic_prefix: str, store: SchemaStore | None = None):
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

        self.store = store or default_store()
        self.prefix = topic_prefix
        client = SchemaRegistryClient.new_client({"url": registry_url})  # mock:// in tests
        self._serializers = {}
        self._deserializers = {}
        for spec in catalogue.TOPICS:
            schema_json = _schema_json(self.store[spec.value_schema].source)
            self._serializers[spec.name] = AvroSerializer(client, schema_json)
            self._deserializers[spec.name] = AvroDeserializer(client, schema_json)

    def _context(self, topic: str):
        from confluent_kafka.serialization import MessageField, SerializationContext

        return SerializationContext(self.prefix + topic, MessageField.VALUE)

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return self._serializers[topic](record, self._context(topic))

    def decode(self, topic: str, data: bytes | None) -> dict[str, Any]:
        if not data:
            raise DecodeError(Reason.EMPTY_VALUE, "message has no value")
        if data[0] != 0 or len(data) < 5:
            raise DecodeError(
                Reason.UNDECODABLE, "not in the Confluent wire format (bad magic byte)"
            )
        try:
            return self._deserializers[topic](data, self._context(topic))
        except Exception as error:
            raise DecodeError(Reason.UNDECODABLE, f"{topic}: {error}") from None


def _schema_json(source: dict) -> str:
    import json

    return json.dumps(source)


def make_codec(schema_registry: str | None, topic_prefix: str) -> Codec:
    if schema_registry:
        return ConfluentCodec(schema_registry, topic_prefix)
    return SingleObjectCodec()
