#!/bin/sh
# A single-node Apache Kafka (KRaft: broker and controller in one process), configured by environment:
#
#   KAFKA_<PROPERTY>=value   any broker property: upper case, "." written "_", "_" written "__", "-" written
#                            "___" (KAFKA_NUM_PARTITIONS=12 sets num.partitions=12); overrides the defaults
#   KAFKA_ADVERTISED_HOST    the host name clients use for the PLAINTEXT listener (default: this hostname);
#                            KAFKA_ADVERTISED_LISTENERS replaces the whole listener list instead
#   CLUSTER_ID               a fixed cluster id (default: made once and kept in the data directory)
#   KAFKA_HEAP_OPTS          JVM heap (default -Xms256m -Xmx768m); KAFKA_JVM_OPTS adds other JVM flags
#
# Data lives in /var/lib/kafka (mount a volume there to keep it). Logs go to stdout; the line
# "Kafka Server started" means the broker serves.
set -eu

DATA=/var/lib/kafka
PROPS="$DATA/server.properties"
LIBS="/opt/kafka/libs/*"
mkdir -p "$DATA/data"

{
  echo "# Written by /opt/kafka/entrypoint.sh at start; set KAFKA_* variables instead of editing."
  echo "process.roles=broker,controller"
  echo "node.id=1"
  echo "controller.quorum.voters=1@localhost:9093"
  echo "listeners=PLAINTEXT://:9092,CONTROLLER://localhost:9093"
  echo "advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED_HOST:-$(hostname)}:9092"
  echo "controller.listener.names=CONTROLLER"
  echo "inter.broker.listener.name=PLAINTEXT"
  echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  echo "log.dirs=$DATA/data"
  # one node: every replication factor is 1, internal topics are small
  echo "offsets.topic.replication.factor=1"
  echo "offsets.topic.num.partitions=1"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "transaction.state.log.num.partitions=1"
  echo "share.coordinator.state.topic.replication.factor=1"
  echo "share.coordinator.state.topic.min.isr=1"
  echo "share.coordinator.state.topic.num.partitions=1"
  echo "default.replication.factor=1"
  echo "min.insync.replicas=1"
  echo "group.initial.rebalance.delay.ms=0"
  echo "group.min.session.timeout.ms=1000"
  echo "auto.create.topics.enable=false"
  echo "num.partitions=12"
  echo "log.retention.hours=24"
  # a small machine
  echo "num.network.threads=2"
  echo "num.io.threads=2"
  echo "background.threads=2"
  echo "num.recovery.threads.per.data.dir=1"
  echo "log.cleaner.threads=1"
  echo "log.cleaner.dedupe.buffer.size=33554432"
  echo "# from the environment"
  env | grep '^KAFKA_' | while IFS='=' read -r name value; do
    case "$name" in
      KAFKA_HEAP_OPTS | KAFKA_JVM_OPTS | KAFKA_ADVERTISED_HOST) continue ;;
    esac
    key=$(echo "${name#KAFKA_}" | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g' | tr 'A-Z' 'a-z')
    echo "$key=$value"
  done
} > "$PROPS"

if [ -z "${CLUSTER_ID:-}" ]; then
  if [ ! -s "$DATA/cluster.id" ]; then
    # 16 random bytes, base64url without padding: the form Kafka's cluster ids take
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c 1-22 > "$DATA/cluster.id"
  fi
  CLUSTER_ID=$(cat "$DATA/cluster.id")
fi

java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties \
  -cp "$LIBS" kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$PROPS" --ignore-formatted >/dev/null

# shellcheck disable=SC2086 # the *_OPTS variables are lists of flags
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:ParallelGCThreads=2 \
  -XX:ConcGCThreads=1 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
  -Dkafka.logs.dir="$DATA/logs" -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties ${KAFKA_JVM_OPTS:-} \
  -cp "$LIBS" kafka.Kafka "$PROPS"
