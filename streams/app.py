"""The Faust application: one per worker process, configured from `Settings`.

Owns the Faust settings that matter on tansu and on real Kafka (group-join timeouts,
partitions, processing guarantee) and the helpers that name topics through the catalogue.
Agents and views register themselves on `app` when their modules are imported.
"""

from __future__ import annotations

import faust
import mode
from faust.serializers import codecs

import streams.transport  # noqa: F401  (registers the tokengine:// transport)
from tokengine.assets import AssetCatalogue, load_assets
from tokengine.config import Settings
from topics import catalogue
from topics.codec import Codec, make_codec
from topics.view import Fold, Folded, TopicView

settings = Settings.from_env()


class Utf8Codec(codecs.Codec):
    """Table keys are account ids as UTF-8 (registered as 'utf8')."""

    def _dumps(self, value: object) -> bytes:
        return value.encode() if isinstance(value, str) else value

    def _loads(self, data: bytes) -> str:
        return data.decode()


codecs.register("utf8", Utf8Codec())


def create_app(settings: Settings) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return faust.App(
        settings.app_id,
        broker=f"tokengine://{settings.kafka or '127.0.0.1:9092'}",  # see streams.transport
        store="memory://",
        autodiscover=False,
        topic_partitions=catalogue.ACCOUNT_PARTITIONS,
        topic_replication_factor=1,
        # tansu (and small clusters) join a group in half the session timeout
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_request_timeout=40,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        # tansu can report a changelog's end below what was read; a recovery that stops short
        # is safe here (the ledger rewinds to its watermarks), a crash on it is not
        recovery_consistency_check=False,
        producer_linger=0.005,
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.api_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
    )


app = create_app(settings)
codec: Codec = make_codec(settings.schema_registry, settings.topic_prefix)


def assets() -> AssetCatalogue:
    return load_assets(settings.assets_file)


def topic_name(name: str) -> str:
    return catalogue.spec(name).full_name(settings.topic_prefix)


def raw_topic(name: str) -> faust.TopicT:
    """A catalogue topic as raw bytes: values are decoded by `codec`, not by Faust."""
    spec = catalogue.spec(name)
    return app.topic(
        spec.full_name(settings.topic_prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )


class _ViewService(mode.Service):
    view: TopicView

    async def on_start(self) -> None:
        self.view.start()

    async def on_stop(self) -> None:
        await self.loop.run_in_executor(None, self.view.stop)


def serve_view(
    topics: list[str],
    fold: Fold,
    name: str,
    partitions: dict[str, int] | None = None,
    folded: Folded | None = None,
) -> TopicView:
    """A whole-topic view (see `topics.view`) that runs for the worker's lifetime."""
    view = TopicView(
        settings.kafka or "", settings.topic_prefix, codec, topics, fold, name, partitions, folded
    )
    service_name = f"View_{name.replace('-', '_')}"
    app.service(type(service_name, (_ViewService,), {"view": view, "__module__": __name__}))
    return view
