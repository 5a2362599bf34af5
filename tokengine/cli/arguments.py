"""What every command shares: refusing bad arguments, the settings, publishing one record.

A bad argument or setting prints one line naming it and exits with code 2 (`fail`),
before anything is produced; a record the broker does not acknowledge exits with 1.

The local-owner rule: a command that writes an operator's decision (a binding, a price,
the breaker, a key) signs it as the operator (`topics.authentication`), so it runs only
for whoever can read the engine's record keys (the file is the owner's, mode 0600); its
actor is that user as the operating system knows them (`owner:<user>(uid N)`, not an
environment variable anyone can set). Anyone else acts through the API with a key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from core.assets import AssetConfigError, load_assets
from core.config import Settings
from core.fields import FieldError, load_json

USAGE_ERROR = 2
NOT_PUBLISHED = 1
MAX_JSON_FILE_BYTES = 1024 * 1024


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE_ERROR)


def settings_or_fail(need_kafka: bool = True) -> Settings:
    try:
        settings = Settings.from_env()
        load_assets(settings.assets_file)  # a configuration that contradicts itself: no start
    except AssetConfigError as error:
        fail(f"{settings.assets_file}: {error}")
    except (ValueError, OSError) as error:
        fail(str(error))
    if need_kafka and not settings.kafka:
        fail("TOKENGINE_KAFKA: not set (the bootstrap servers of the engine's broker)")
    return settings


def database_url_or_fail(settings: Settings) -> str:
    if not settings.database_url:
        fail("TOKENGINE_DATABASE_URL: not set (the Postgres the sink writes)")
    return settings.database_url


def read_json_argument(text: str) -> object:
    """`--json`: the document itself, or `@FILE` (at most MAX_JSON_FILE_BYTES)."""
    document: str | bytes = text
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            with path.open("rb") as handle:
                document = handle.read(MAX_JSON_FILE_BYTES + 1)
        except OSError as error:
            fail(f"--json: cannot read {path}: {error.strerror}")
        if len(document) > MAX_JSON_FILE_BYTES:
            fail(f"--json: {path} is larger than {MAX_JSON_FILE_BYTES} bytes")
    try:
        return load_json(document)
    except FieldError as error:
        fail(f"--json: {str(error).removeprefix('json: ')}")


def owner_actor() -> str:
    """The local owner as the operating system knows them (not $LOGNAME)."""
    import pwd

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"owner:{name}(uid {uid})"


def owner_producer(settings: Settings):
    """A producer signing as the operator, for the owner of the record keys only."""
    from topics import catalogue
    from topics.authentication import RecordAuth, RecordKeys, SigningProducer
    from topics.kafka import make_producer

    path = settings.record_keys_path
    try:
        keys = RecordKeys.read(path)
    except (OSError, ValueError) as error:
        fail(
            f"TOKENGINE_RECORD_KEYS_FILE: {path} cannot be read ({type(error).__name__}): only "
            "the engine's owner acts from the command line; others use the API with a key"
        )
    auth = RecordAuth(keys, catalogue.OPERATOR)
    return SigningProducer(make_producer(settings.kafka), settings.topic_prefix, auth)


def publish(settings: Settings, topic: str, key: str, record: dict[str, Any]) -> None:
    """Produce one record and wait for the broker's acknowledgement: a request as anyone
    may; an operator's decision signed, for the local owner only."""
    from topics import catalogue, operator_records
    from topics.codec import make_codec
    from topics.kafka import NotAcknowledged, make_producer

    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    if topic in catalogue.REQUEST_TOPICS.values():
        producer = make_producer(settings.kafka)
    else:
        producer = owner_producer(settings)
    try:
        operator_records.publish(producer, settings.topic_prefix, codec, topic, key, record)
    except NotAcknowledged as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(NOT_PUBLISHED)
