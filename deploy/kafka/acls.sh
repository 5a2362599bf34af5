#!/usr/bin/env bash
# The ACLs of docker-compose.kafka.yml (the one-shot `acls` job, after the brokers are
# healthy; idempotent: adding an ACL that exists changes nothing). The brokers refuse
# whatever no ACL allows (allow.everyone.if.no.acl.found=false); `broker` and `admin` are
# super users and need none.
#
# Every grant is one line `allow USER RESOURCE PATTERN NAME OPERATION...`, so that
# tests/test_compose.py can read them: RESOURCE is topic, group, transactional-id or
# cluster; PATTERN LITERAL or PREFIXED; ${P} is the topic prefix (TOKENGINE_TOPIC_PREFIX),
# ${A} the application id (TOKENGINE_APP_ID: Faust's group, its internal topics
# `${A}-...-changelog` and transactional ids, the sink's and executors' groups).
#
# Users, one per kind of process (so a process can write only what it signs, see
# topics/catalogue.py SIGNERS; the record HMACs are the first boundary, these the second):
#   worker      Faust workers (intake, ledger, reconciliation, the API), the operator CLI
#               run inside a worker container, the metrics-key job
#   connectors  chain watchers and payout executors
#   sink        the Postgres sink
#   schema-registry, upstream (request producers), downstream (ledger consumers),
#   ui (Kafka UI, read-only)
set -euo pipefail

P="${TOKENGINE_TOPIC_PREFIX:?}"
A="${TOKENGINE_APP_ID:?}"
BOOTSTRAP="${KAFKA_BOOTSTRAP:?}"
# where things are (overridable for tests/test_deploy.py, which runs this with a stand-in)
RUNTIME=${ACLS_RUNTIME_DIR:-/run/acls}
SECRETS=${SECRETS_DIR:-/run/secrets}
BIN=${ACLS_BIN_DIR:-/opt/kafka/bin}
CONFIG=$RUNTIME/admin.properties

umask 077
mkdir -p "$RUNTIME"
admin_password=$(<"$SECRETS/kafka-admin-password")
cat >"$CONFIG" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
EOF

allow() {
  local user=$1 resource=$2 pattern=$3 name=$4
  shift 4
  local target=(--"$resource" "$name") operations=() operation
  if [[ $resource == cluster ]]; then
    target=(--cluster)
  fi
  for operation in "$@"; do
    operations+=(--operation "$operation")
  done
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" \
    --add --allow-principal "User:$user" --resource-pattern-type "$pattern" "${target[@]}" \
    "${operations[@]}" >/dev/null
  echo "User:$user $* on $resource $pattern $name"
}

# -- worker: reads every engine topic; writes what it signs and the requests the API takes
allow worker topic PREFIXED "${P}" Read Describe DescribeConfigs
allow worker topic LITERAL "${P}deposit-requests" Write
allow worker topic LITERAL "${P}withdrawal-requests" Write
allow worker topic LITERAL "${P}transfer-requests" Write
allow worker topic LITERAL "${P}address-bindings" Write
allow worker topic LITERAL "${P}deposit-assignments" Write
allow worker topic LITERAL "${P}prices" Write
allow worker topic LITERAL "${P}chain-observations" Write
allow worker topic LITERAL "${P}bank-notifications" Write
allow worker topic LITERAL "${P}bank-statements" Write
allow worker topic LITERAL "${P}bank-balances" Write
allow worker topic LITERAL "${P}transfer-credits" Write
allow worker topic LITERAL "${P}ledger-commands" Write
allow worker topic LITERAL "${P}ledger-entries" Write
allow worker topic LITERAL "${P}balance-updates" Write
allow worker topic LITERAL "${P}payout-commands" Write
allow worker topic LITERAL "${P}request-results" Write
allow worker topic LITERAL "${P}reconciliation-results" Write
allow worker topic LITERAL "${P}discrepancies" Write
allow worker topic LITERAL "${P}eod-snapshots" Write
allow worker topic LITERAL "${P}breaker-state" Write
allow worker topic LITERAL "${P}alerts" Write
allow worker topic LITERAL "${P}dead-letters" Write
allow worker topic LITERAL "${P}api-keys" Write
# Faust's own topics (table changelogs, the assignor's leader topic), which it creates
allow worker topic PREFIXED "${A}-" Create Read Write Describe DescribeConfigs
# the groups a worker joins: Faust's (the app id) and intake's; not a prefix, which would
# also match the sink's and the payout executors' groups (a worker could then join them
# and commit past payout commands nobody paid)
allow worker group LITERAL "${A}" Read Describe
allow worker group LITERAL "${A}-intake" Read Describe
# views and tails read by assignment, never in a group, but librdkafka still looks their
# group id (the view's name) up: Describe only, on any group
allow worker group LITERAL '*' Describe
# TOKENGINE_PROCESSING_GUARANTEE=exactly_once: Faust's transactional producers
allow worker transactional-id PREFIXED "${A}-" Write Describe
allow worker cluster LITERAL kafka-cluster IdempotentWrite

# -- connectors: read every engine topic; write observations, payout results, wallet
#    outflows and balances, alerts
allow connectors topic PREFIXED "${P}" Read Describe
allow connectors topic LITERAL "${P}chain-observations" Write
allow connectors topic LITERAL "${P}payout-results" Write
allow connectors topic LITERAL "${P}wallet-outflows" Write
allow connectors topic LITERAL "${P}wallet-balances" Write
allow connectors topic LITERAL "${P}sweep-results" Write
allow connectors topic LITERAL "${P}alerts" Write
allow connectors topic LITERAL "${P}dead-letters" Write
allow connectors group LITERAL "${A}-eth-payouts" Read Describe
allow connectors group LITERAL "${A}-btc-payouts" Read Describe
allow connectors group LITERAL '*' Describe

# -- sink: reads every engine topic; writes only alerts and dead letters
allow sink topic PREFIXED "${P}" Read Describe
allow sink topic LITERAL "${P}alerts" Write
allow sink topic LITERAL "${P}dead-letters" Write
allow sink group LITERAL "${A}-sink" Read Describe
allow sink group LITERAL '*' Describe

# -- schema-registry: its own topic and group only
allow schema-registry topic LITERAL _schemas Create Read Write Describe DescribeConfigs
allow schema-registry topic LITERAL __consumer_offsets Describe
allow schema-registry group PREFIXED schema-registry Read Describe

# -- upstream: may send requests, nothing else (and never read them back)
allow upstream topic LITERAL "${P}deposit-requests" Write Describe
allow upstream topic LITERAL "${P}withdrawal-requests" Write Describe
allow upstream topic LITERAL "${P}transfer-requests" Write Describe

# -- downstream: may read the ledger's outputs, in groups of its own
allow downstream topic LITERAL "${P}ledger-entries" Read Describe
allow downstream topic LITERAL "${P}balance-updates" Read Describe
allow downstream topic LITERAL "${P}request-results" Read Describe
allow downstream topic LITERAL "${P}alerts" Read Describe
allow downstream group PREFIXED downstream- Read Describe

# -- ui (Kafka UI, READONLY): sees the cluster, every engine topic and every group; writes
# nothing, changes no configuration
allow ui cluster LITERAL kafka-cluster Describe DescribeConfigs
allow ui topic PREFIXED "${P}" Read Describe DescribeConfigs
allow ui topic PREFIXED "${A}-" Describe DescribeConfigs
allow ui topic LITERAL _schemas Describe DescribeConfigs
allow ui group LITERAL '*' Describe
allow ui group PREFIXED kafka-ui Read Describe

echo "acls: done"
