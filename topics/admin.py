"""Creates the catalogue's topics, idempotently (existing topics are left as they are).

Partition counts are the catalogue's (they are part of the data layout: the ledger maps an
account to a partition by them); replication and `min.insync.replicas` are the
deployment's (`TOKENGINE_TOPIC_REPLICATION_FACTOR` / `_MIN_INSYNC_REPLICAS`).
"""

from __future__ import annotations

from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from topics.catalogue import TOPICS, TopicSpec
from topics.kafka import make_admin

CREATE_TIMEOUT_S = 30


def create_topics(
    bootstrap: str,
    prefix: str,
    specs: tuple[TopicSpec, ...] = TOPICS,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> dict[str, str]:
    """Create every topic that does not exist yet; returns {topic: 'created' | 'exists'}."""
    admin = make_admin(bootstrap)
    replicated = {}
    if min_insync_replicas > 1:  # tansu (one node) is given no setting it has no use for
        replicated["min.insync.replicas"] = str(min_insync_replicas)
    existing = set(admin.list_topics(timeout=CREATE_TIMEOUT_S).topics)
    outcome = {
        spec.full_name(prefix): "exists" for spec in specs if spec.full_name(prefix) in existing
    }
    wanted = [
        NewTopic(
            spec.full_name(prefix),
            spec.partitions,
            replication_factor,
            config=spec.config | replicated,
        )
        for spec in specs
        if spec.full_name(prefix) not in existing
    ]
    if not wanted:
        return outcome
    for name, future in admin.create_topics(wanted, request_timeout=CREATE_TIMEOUT_S).items():
        try:
            future.result()
            outcome[name] = "created"
        except Exception as error:  # a concurrent creator is fine; anything else is not
            kafka_error = error.args[0] if error.args else None
            if (
                isinstance(kafka_error, KafkaError)
                and kafka_error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                outcome[name] = "exists"
            else:
                raise
    return outcome
