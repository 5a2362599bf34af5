"""Creates the catalogue's topics, idempotently (existing topics are left as they are)."""

from __future__ import annotations

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from topics.catalogue import TOPICS, TopicSpec

CREATE_TIMEOUT_S = 30


def create_topics(
    bootstrap: str, prefix: str, specs: tuple[TopicSpec, ...] = TOPICS
) -> dict[str, str]:
    """Create every topic that does not exist yet; returns {topic: 'created' | 'exists'}."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=CREATE_TIMEOUT_S).topics)
    outcome = {
        spec.full_name(prefix): "exists" for spec in specs if spec.full_name(prefix) in existing
    }
    wanted = [
        NewTopic(spec.full_name(prefix), spec.partitions, 1, config=spec.config)
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
