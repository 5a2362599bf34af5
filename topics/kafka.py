"""Kafka clients: every non-Faust producer and consumer is made here, with shared settings.

`make_producer` / `make_consumer` (a group member), `make_reader` (assign-only: views,
tails, one-off reads), `make_admin`, `flush` (wait for every delivery or raise: one helper,
one error), and how consumers read (`consume_available`).

How a client authenticates (`client_security`: SASL/SCRAM and TLS, from the
`TOKENGINE_KAFKA_*` settings, the password read from its file) is the same for every
client of a process; Faust gets the same through `faust_credentials`.

The timeouts are chosen for tansu too: a consumer-group join waits half the session
timeout, so a 6 s session makes joins take ~3 s instead of ~25 s.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient

from core.config import Settings
from core.secrets import read_secret_file
from topics.partitioning import PRODUCER_PARTITIONER

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
# tansu answers a fetch that found nothing only when its wait ends (new records do not end
# it), so the wait is a hop's latency on a quiet topic, and every consumer fetches once per
# wait while quiet: 7 consumers at 20 ms kept tansu busy at 0.78 core with an idle worker.
FETCH_WAIT_MAX_MS = 20  # hops on the money path (intake, the ledger feed): keep them short
# consumers off the money path (whole-topic views, Faust's own consumer): 100 ms late at most
OFF_PATH_FETCH_WAIT_MAX_MS = 100
# A loop that produces a batch and then flushes it: librdkafka's flush sends at once,
# whatever the linger, so a long linger only keeps it from splitting a batch into many
# small requests while the batch is produced. tansu's cost is per request and partition:
# 60,000 records in batches of 6,000 over 24 partitions cost it 2.3 s of CPU at 2 ms
# linger, 0.4 s at 50 ms; a 1-worker backlog ran 24-45% faster with tansu at 0.37 core
# instead of 0.53. Records produced after a flush go with the next one, or after this.
FLUSHED_BATCH_LINGER_MS = 100
FLUSH_TIMEOUT_S = 30.0


class KafkaSecurityError(ValueError):
    """The Kafka security settings contradict each other (named in the message)."""


def security_config(settings: Settings) -> dict[str, str]:
    """librdkafka's settings for how these settings authenticate to the brokers."""
    protocol = settings.kafka_security_protocol
    config = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        if not settings.kafka_sasl_username or settings.kafka_sasl_password_file is None:
            raise KafkaSecurityError(
                f"TOKENGINE_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "TOKENGINE_KAFKA_SASL_USERNAME and TOKENGINE_KAFKA_SASL_PASSWORD_FILE"
            )
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": read_secret_file(settings.kafka_sasl_password_file),
        }
    if protocol.endswith("SSL") and settings.kafka_ca_file is not None:
        config["ssl.ca.location"] = str(settings.kafka_ca_file)
    return config


@cache
def client_security() -> dict[str, str]:
    """This process's Kafka authentication (its settings are read from the environment once,
    like every process's): the same for each of its clients."""
    return security_config(Settings.from_env())


def faust_credentials(settings: Settings) -> Any:
    """Faust's (aiokafka's) form of `security_config`: None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        ca_file = settings.kafka_ca_file
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    config = security_config(settings)
    return faust.SASLCredentials(
        username=config["sasl.username"],
        password=config["sasl.password"],
        mechanism=config["sasl.mechanism"],
        ssl_context=context,
    )


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        **client_security(),
        "partitioner": PRODUCER_PARTITIONER,
        "linger.ms": 5,
        "acks": "all",
        # one request at a time: per-partition order, and no two requests of ours to one
        # partition in flight together (tansu may show the later one first)
        "max.in.flight.requests.per.connection": 1,
        **extra,
    }


def paced_fetching(interval_ms: int) -> dict[str, Any]:
    """Consumer settings that fetch each partition at most once per `interval_ms`.

    librdkafka fetches again as soon as a fetch brings records, so under load every
    consumer kept one small fetch after another in flight, and each costs tansu about 2 ms
    of CPU whatever it carries (with the engine's two hops fetching back to back, tansu
    used 0.83 core at 1,400 events/s; paced, 0.64). With `queued.min.messages` 1, a
    partition whose records the application has not taken yet waits
    `fetch.queue.backoff.ms` before its next fetch; a quiet one waits `fetch.wait.max.ms`
    on the broker. Either way records wait at most `interval_ms` longer.
    """
    return {
        "fetch.wait.max.ms": interval_ms,
        "queued.min.messages": 1,
        "fetch.queue.backoff.ms": interval_ms,
    }


def consumer_config(bootstrap: str, group_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        **client_security(),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        **paced_fetching(FETCH_WAIT_MAX_MS),
        **extra,
    }


def make_producer(bootstrap: str, **extra: Any) -> Producer:
    return Producer(producer_config(bootstrap, **extra))


def make_consumer(bootstrap: str, group_id: str, **extra: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap, group_id, **extra))


def make_reader(bootstrap: str, name: str, **extra: Any) -> Consumer:
    """A consumer that is assigned partitions and never joins its group nor commits."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            **client_security(),
            "group.id": name,
            "enable.auto.commit": False,
            **extra,
        }
    )


def make_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **client_security()})


class NotAcknowledged(RuntimeError):
    """The broker did not acknowledge every record produced (the caller must not go on
    as if they were written)."""


def flush(producer: Producer, what: str, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Wait until the broker has acknowledged everything `producer` has in flight."""
    remaining = producer.flush(timeout_s)
    if remaining:
        raise NotAcknowledged(f"{what}: {remaining} records not acknowledged by the broker")


def consume_available(consumer: Consumer, max_messages: int, timeout_s: float) -> list[Message]:
    """What is already there (up to `max_messages`), or else what comes first within
    `timeout_s` and whatever came with it. `consume(n, timeout)` alone waits for n
    messages or the whole timeout: at low rates every message would wait the timeout."""
    messages = consumer.consume(max_messages, 0)
    if messages:
        return messages
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]
