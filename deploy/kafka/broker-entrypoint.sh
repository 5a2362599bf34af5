#!/usr/bin/env bash
# One Kafka node of docker-compose.kafka.yml (KRaft, broker and controller in one process):
# renders its configuration, formats its storage once (with every SCRAM user), starts it.
#
# - Configuration: every KAFKA_* variable of the service becomes a property (KAFKA_ stripped,
#   lower case, `_` -> `.`, `__` -> `_`, `___` -> `-`), as the apache/kafka image does; the
#   JAAS lines that hold the broker's password are added here from /run/secrets, so no
#   password is ever in the environment, `docker inspect` or the compose file. The rendered
#   file lives on the tmpfs /run/kafka (never on disk).
# - SCRAM users: in KRaft their credentials are metadata records, and the brokers need
#   theirs before the quorum can serve anything, so every user in SCRAM_USERS is added when
#   the storage is formatted (`kafka-storage.sh format --add-scram`), with the password of
#   /run/secrets/kafka-<user>-password. `--ignore-formatted` leaves a formatted volume as it
#   is: a password changed later is changed with kafka-configs.sh (see the README), not
#   here. The passwords never go on a command line (the host's `ps` sees a container's
#   processes): the `--add-scram` arguments are written to a 0600 file on the tmpfs that
#   kafka-storage.sh reads as `@file` (its parser takes arguments from files), removed
#   after; and the format runs only on a volume that was never formatted.
# - Runs as root (compose bind-mounts file secrets with the host file's owner and mode
#   0600; only root reads them in the container).
set -euo pipefail

# where things are (overridable for tests/test_deploy.py, which runs this with stand-ins)
RUNTIME=${BROKER_RUNTIME_DIR:-/run/kafka}
SECRETS=${SECRETS_DIR:-/run/secrets}
BIN=${BROKER_BIN_DIR:-/opt/kafka/bin}
PROPERTIES=$RUNTIME/server.properties
SCRAM_MECHANISM="SCRAM-SHA-512"
SCRAM='org.apache.kafka.common.security.scram.ScramLoginModule required'
PLAIN='org.apache.kafka.common.security.plain.PlainLoginModule required'
# variables the Kafka scripts read themselves: not properties
NOT_PROPERTIES=" KAFKA_OPTS KAFKA_HEAP_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS \
KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS KAFKA_DEBUG "

: "${CLUSTER_ID:?the cluster id (the same on every node)}"
: "${SCRAM_USERS:?the SCRAM users to create at format time}"
umask 077
mkdir -p "$RUNTIME"

password() {
  local file="$SECRETS/kafka-$1-password" value
  value=$(<"$file")
  # it goes between quotes in a JAAS line and inside [name=...,password=...]
  if [[ ! $value =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
    echo "$file: at least 16 letters, digits, '-' or '_' (make deploy-secrets writes one)" >&2
    exit 1
  fi
  printf '%s' "$value"
}

property_name() {
  local key=${1#KAFKA_}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s' "${key,,}"
}

broker=$(password broker)
{
  for name in $(compgen -e); do
    [[ $name == KAFKA_* && $NOT_PROPERTIES != *" $name "* ]] || continue
    printf '%s=%s\n' "$(property_name "$name")" "${!name}"
  done
  # The controller quorum authenticates with SASL/PLAIN (SCRAM cannot: its credentials are
  # metadata the quorum itself serves), the user `broker` checked against this line alone.
  echo "listener.name.controller.plain.sasl.jaas.config=$PLAIN username=\"broker\" password=\"$broker\" user_broker=\"$broker\";"
  # replication between brokers, as `broker` (a super user)
  echo "listener.name.internal.scram-sha-512.sasl.jaas.config=$SCRAM username=\"broker\" password=\"$broker\";"
  # clients: every user authenticates with SCRAM against the metadata's credentials
  echo "listener.name.client.scram-sha-512.sasl.jaas.config=$SCRAM;"
  echo "listener.name.external.scram-sha-512.sasl.jaas.config=$SCRAM;"
} >"$PROPERTIES"

# the healthcheck's client configuration (kafka-topics.sh as `broker`)
cat >"$RUNTIME/client.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$SCRAM_MECHANISM
sasl.jaas.config=$SCRAM username="broker" password="$broker";
EOF

LOG_DIRS=${KAFKA_LOG_DIRS:-/var/lib/kafka/data}
if [[ ! -e "$LOG_DIRS/meta.properties" ]]; then
  arguments=$RUNTIME/format.arguments
  (
    umask 077
    : >"$arguments"
    for user in $SCRAM_USERS; do
      printf '%s\n%s\n' --add-scram \
        "$SCRAM_MECHANISM=[name=$user,password=$(password "$user")]" >>"$arguments"
    done
  )
  "$BIN/kafka-storage.sh" format --config "$PROPERTIES" --cluster-id "$CLUSTER_ID" \
    --ignore-formatted "@$arguments"
  rm -f "$arguments"
fi

exec "$BIN/kafka-server-start.sh" "$PROPERTIES"
