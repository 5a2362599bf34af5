#!/bin/sh
# shellcheck disable=SC2089,SC2090 # the quotes belong to the JAAS line itself
# The schema registry of docker-compose.kafka.yml, as the Kafka user `schema-registry`: its
# JAAS line (which holds the password) is made here from /run/secrets, so the password is
# in no compose file and in no `docker inspect`; then the image's own start script.
set -eu
password=$(cat /run/secrets/kafka-schema-registry-password)
SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"schema-registry\" password=\"$password\";"
export SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG
exec /etc/confluent/docker/run
