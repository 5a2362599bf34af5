"""Every topic the sink reads maps to complete named parameters, from its own schema.

Pure: no Postgres. A sample event is built from each topic's Avro schema (every field
set), so a statement naming a field the event does not carry fails here, not at 3 a.m.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sinks.rows import PARAMETERS, ROWS, STATEMENTS, TOPICS, rows
from topics import catalogue
from topics.schemas import default_store

AVRO = Path(__file__).resolve().parents[2] / "avro"


def sample(schema, named: dict) -> object:
    """A value for `schema` with every field present (the first branch of a union that
    is not null, the first enum symbol, one item in an array)."""
    if isinstance(schema, str):
        simple = {"string": "x", "long": 1, "int": 1, "boolean": True, "bytes": b"x"}
        return simple[schema] if schema in simple else sample(named[schema], named)
    if isinstance(schema, list):
        return sample(next(s for s in schema if s != "null"), named)
    logical = schema.get("logicalType")
    if logical == "decimal":
        return Decimal("1.5")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return datetime(2026, 12, 2, tzinfo=UTC)
    if logical == "date":
        return date(2026, 12, 2)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: sample(f["type"], named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    if kind == "array":
        return [sample(schema["items"], named)]
    if kind == "map":
        return {}
    return sample(kind, named)


def sample_event(topic: str) -> dict:
    schema = json.loads((AVRO / f"{catalogue.spec(topic).value_schema}.avsc").read_text())
    return sample(schema, {})


@pytest.mark.parametrize("topic", TOPICS)
def test_every_parameter_of_every_statement_comes_from_the_event(topic):
    mapped = rows(topic, sample_event(topic), {"ETH": "USD"})
    assert mapped, topic
    for statement, params in mapped:
        assert set(params) == set(PARAMETERS[statement]), (topic, statement)
        assert all(f"%({name})s" in STATEMENTS[statement] for name in params)


@pytest.mark.parametrize("topic", TOPICS)
def test_an_event_without_a_field_its_statement_names_is_refused_before_postgres(topic):
    event = sample_event(topic)
    first_statement = ROWS[topic](event, {})[0][0]
    if first_statement == "audit":  # an operator's record kept in the audit log only
        required = [f["name"] for f in default_store()[catalogue.spec(topic).value_schema]
                    .source["fields"] if "default" not in f]  # fmt: skip
        del event[required[0]]
        with pytest.raises(KeyError):
            rows(topic, event)
        return
    wanted = [name for name in PARAMETERS[first_statement] if name in event]
    assert wanted, (topic, first_statement)
    del event[wanted[-1]]
    with pytest.raises(KeyError):
        rows(topic, event)


def test_a_topic_the_sink_does_not_read_is_refused():
    with pytest.raises(KeyError, match="does not read"):
        rows(catalogue.DEAD_LETTERS, {})
