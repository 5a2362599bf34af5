#!/bin/sh
# shellcheck disable=SC2089,SC2090 # the quotes belong to the JAAS line itself
# Kafka UI of docker-compose.kafka.yml: connects as the read-only Kafka user `ui`, and asks
# its own users for a login (user `operator`). Both passwords come from /run/secrets here,
# never from the compose file; then the image's own command.
set -eu
kafka_password=$(cat /run/secrets/kafka-ui-password)
KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"ui\" password=\"$kafka_password\";"
SPRING_SECURITY_USER_PASSWORD=$(cat /run/secrets/ui-login-password)
export KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG SPRING_SECURITY_USER_PASSWORD
# shellcheck disable=SC2086 # JAVA_OPTS is a list of options, as in the image's CMD
exec java --add-opens java.rmi/javax.rmi.ssl=ALL-UNNAMED ${JAVA_OPTS:-} -jar /kafka-ui-api.jar
