"""The `tokengine` command line (click): run the engine and talk to its topics.

Commands: `up` (what `make run` runs), `worker`, `topics create`, `submit`, `tail`.
Bad arguments print one line naming the field and exit with code 2, producing nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from tokengine.assets import load_assets
from tokengine.config import Settings
from tokengine.requests import KINDS, RequestError, build_request
from topics import catalogue

USAGE_ERROR = 2
REQUEST_TOPICS = {
    "deposit": catalogue.DEPOSIT_REQUESTS,
    "withdrawal": catalogue.WITHDRAWAL_REQUESTS,
    "transfer": catalogue.TRANSFER_REQUESTS,
}


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE_ERROR)


def settings_or_fail(need_kafka: bool = True) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as error:
        fail(str(error))
    if need_kafka and not settings.kafka:
        fail("TOKENGINE_KAFKA: not set (the bootstrap servers of the engine's broker)")
    return settings


@click.group()
def main() -> None:
    """TokEngine: an exactly-once token ledger on Kafka."""


@main.command()
@click.option("--workers", type=click.IntRange(1, 8), default=None, help="Faust workers to run.")
def up(workers: int | None) -> None:
    """Start everything: embedded services (unless configured), topics, workers, API."""
    from tokengine.up import run_up

    settings = settings_or_fail(need_kafka=False)
    sys.exit(run_up(settings.with_overrides(workers=workers or settings.workers)))


@main.command()
def worker() -> None:
    """Run one Faust worker against the configured services."""
    settings_or_fail()
    from streams.worker import run_worker

    sys.argv = [sys.argv[0]]  # Faust's own command line must not see ours
    run_worker()


@main.group()
def topics() -> None:
    """Topic catalogue commands."""


@topics.command("create")
def topics_create() -> None:
    """Create every catalogue topic (idempotent)."""
    from topics.admin import create_topics

    settings = settings_or_fail()
    for name, outcome in sorted(create_topics(settings.kafka, settings.topic_prefix).items()):
        click.echo(f"{outcome:8} {name}")


@topics.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    for spec in catalogue.TOPICS:
        click.echo(f"{spec.name:24} p={spec.partitions:<2} key={spec.key:16} {spec.value_schema}")


def read_json_argument(text: str) -> object:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as error:
            fail(f"--json: cannot read {path}: {error.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"--json: invalid JSON ({error.msg} at line {error.lineno} column {error.colno})")


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("kind")
@click.option("--json", "json_text", required=True, help="The request as JSON, or @FILE.")
def submit(kind: str, json_text: str) -> None:
    """Validate and produce one request event (KIND: deposit, withdrawal, transfer)."""
    if kind not in KINDS:
        fail(f"KIND: must be one of {', '.join(KINDS)}, not {kind!r}")
    data = read_json_argument(json_text)
    settings = settings_or_fail()
    try:
        record = build_request(kind, data, load_assets(settings.assets_file))
    except RequestError as error:
        fail(str(error))
    from topics.codec import make_codec
    from topics.kafka import make_producer

    topic = REQUEST_TOPICS[kind]
    value = make_codec(settings.schema_registry, settings.topic_prefix).encode(topic, record)
    producer = make_producer(settings.kafka)
    producer.produce(settings.topic_prefix + topic, value, record["account_id"].encode())
    if producer.flush(30) != 0:
        click.echo("error: the broker did not acknowledge the request", err=True)
        sys.exit(1)
    click.echo(record["request_id"])


@main.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("--max", "max_messages", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--idle-timeout", type=float, help="Stop after this many seconds without messages.")
def tail(topic: str, from_beginning: bool, max_messages: int | None,
         idle_timeout: float | None) -> None:  # fmt: skip
    """Print a topic's messages as JSON lines (Avro decoded)."""
    if topic not in catalogue.BY_NAME:
        fail(f"TOPIC: unknown topic {topic!r} (see `tokengine topics list`)")
    from topics.tail import tail_topic

    settings = settings_or_fail()
    count = tail_topic(settings, topic, from_beginning, max_messages, idle_timeout, click.echo)
    if max_messages and count < max_messages:
        sys.exit(1)
