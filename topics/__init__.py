"""Event contracts: the topic catalogue, Avro schemas and their wire encoding.

`catalogue` names every topic; `schemas` loads `avro/*.avsc`; `codec` turns records into
bytes and back; `partitioning` maps keys to partitions the same way on every producer.
"""
