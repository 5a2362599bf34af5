"""The worker's application object: settings, assets, codec and the Faust app, made once.

`Engine(settings)` owns what every component of a worker shares; components are built
from it and register their agents, tables, timers, services and views on `engine.app`
(nothing is wired when a module is imported: `tokengine.worker` composes a worker, a test
can compose part of one). The Faust settings that matter on tansu and on real Kafka
(group-join timeouts, partitions, processing guarantee) are `create_app`'s.
"""

from __future__ import annotations

import socket
from typing import TypeVar

import faust
import mode
from faust.serializers import codecs

import streams.transport  # noqa: F401  (registers the tokengine:// transport)
from core.assets import AssetCatalogue, load_assets
from core.config import Settings
from topics import catalogue
from topics.authentication import RecordAuth, record_auth
from topics.codec import Codec, make_codec
from topics.kafka import faust_credentials
from topics.view import Fold, Folded, TopicView

T = TypeVar("T")


class Utf8Codec(codecs.Codec):
    """Table keys are account ids as UTF-8 (registered as 'utf8')."""

    def _dumps(self, value: object) -> bytes:
        return value.encode() if isinstance(value, str) else value

    def _loads(self, data: bytes) -> str:
        return data.decode()


codecs.register("utf8", Utf8Codec())


def create_app(settings: Settings) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.app_id,
        broker=f"tokengine://{settings.kafka or '127.0.0.1:9092'}",  # see streams.transport
        store="memory://",
        autodiscover=False,
        topic_partitions=catalogue.ACCOUNT_PARTITIONS,
        topic_replication_factor=settings.topic_replication_factor,
        broker_credentials=faust_credentials(settings),
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
        web_bind=settings.api_bind,
        web_host=socket.gethostname() if settings.api_bind == "0.0.0.0" else settings.api_bind,
        web_port=settings.api_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
    )
    streams.transport.prepare(app)
    return app


class Engine:
    """One worker's shared parts: what every component is built from."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.assets: AssetCatalogue = load_assets(settings.assets_file)
        self.codec: Codec = make_codec(settings.schema_registry, settings.topic_prefix)
        self.auth: RecordAuth = record_auth(settings, catalogue.WORKER)
        self.app = create_app(settings)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka or "127.0.0.1:9092"

    def topic_name(self, name: str) -> str:
        return catalogue.spec(name).full_name(self.settings.topic_prefix)

    def raw_topic(self, *names: str) -> faust.TopicT:
        """Catalogue topics as raw bytes: values are decoded by `codec`, not by Faust."""
        return self.app.topic(
            *(self.topic_name(name) for name in names),
            key_serializer="raw",
            value_serializer="raw",
            partitions=catalogue.spec(names[0]).partitions,
            internal=False,
        )

    def account_table(self, table_class: type[T], name: str, help: str) -> T:
        """A table co-partitioned with the account topics (one partition per account
        partition, recovered by the worker that owns it)."""
        return self.app.tables.add(
            table_class(
                self.app,
                name=name,
                default=None,
                partitions=catalogue.ACCOUNT_PARTITIONS,
                beacon=self.app.tables.beacon,
                help=help,
            )
        )

    def serve_view(
        self,
        topics: list[str],
        fold: Fold,
        name: str,
        partitions: dict[str, int] | None = None,
        folded: Folded | None = None,
    ) -> TopicView:
        """A whole-topic view (see `topics.view`) that runs for the worker's lifetime."""
        view = TopicView(
            self.settings.kafka or "",
            self.settings.topic_prefix,
            self.codec,
            self.auth,
            topics,
            fold,
            name,
            partitions,
            folded,
        )
        self.app.service(ViewService(view))  # an instance: Faust starts it with the app
        return view


class ViewService(mode.Service):
    """Runs a `TopicView`'s thread with the worker."""

    def __init__(self, view: TopicView) -> None:
        super().__init__()
        self.view = view

    async def on_start(self) -> None:
        self.view.start()

    async def on_stop(self) -> None:
        await self.loop.run_in_executor(None, self.view.stop)
