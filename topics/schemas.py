"""Avro schemas: loads `avro/*.avsc` (data only) and answers by name or fingerprint.

A schema's fingerprint is the CRC-64-AVRO of its parsing canonical form, as the Avro
single-object encoding uses it. Every earlier version of a schema that was ever released
is kept in `avro/released/<Name>.<fingerprint>.avsc` and loaded as a writer schema, so a
log written by an older TokEngine (the embedded default keeps its data across upgrades)
is still read, by the current schema with the new fields' defaults (schema evolution; a
change must stay readable that way: `tests/topics/test_schema_history.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

AVRO_DIR = Path(__file__).resolve().parent.parent / "avro"


@dataclass(frozen=True)
class Schema:
    name: str
    parsed: dict
    fingerprint: bytes  # 8 bytes, little-endian, as in the single-object encoding
    source: dict


def make_schema(source: dict) -> Schema:
    canonical = to_parsing_canonical_form(
        fastavro.parse_schema(source, _write_hint=False, named_schemas={})
    )
    # parsed once with fastavro's marker: a schema without it is parsed again on every call
    parsed = fastavro.parse_schema(source, named_schemas={})
    return Schema(
        source["name"], parsed, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")), source
    )


class SchemaStore:
    """Current schemas by name, and every known writer schema by fingerprint."""

    def __init__(self, directory: Path = AVRO_DIR) -> None:
        self.current: dict[str, Schema] = {}
        self.by_fingerprint: dict[bytes, Schema] = {}
        for path in sorted(directory.glob("*.avsc")):
            schema = make_schema(json.loads(path.read_text()))
            if schema.name != path.stem:
                raise ValueError(f"{path.name} declares {schema.name}")
            self.current[schema.name] = schema
            self.by_fingerprint[schema.fingerprint] = schema
        for path in sorted((directory / "released").glob("*.avsc")):
            self.register_writer(json.loads(path.read_text()))

    def register_writer(self, source: dict) -> Schema:
        """Make an older (or other) writer schema readable."""
        schema = make_schema(source)
        self.by_fingerprint.setdefault(schema.fingerprint, schema)
        return schema

    def __getitem__(self, name: str) -> Schema:
        return self.current[name]


@cache
def default_store() -> SchemaStore:
    return SchemaStore()
