"""Key -> partition, identical for every producer (Java's murmur2, as Kafka clients use it).

confluent-kafka producers are configured with `partitioner=murmur2_random` and aiokafka
(Faust) uses murmur2 by default, so a key lands on the same partition whoever writes it;
the ledger's tables use `partition_for` to put each record in its account's partition.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

PRODUCER_PARTITIONER = "murmur2_random"  # librdkafka's name for the Java-compatible one


@lru_cache(maxsize=1 << 16)
def partition_for(key: str | bytes, partitions: int) -> int:
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions
