"""Kafka plumbing shared by the services: clients, topics, the consume loop, views."""

from agentwire.kafka.admin import ensure_topics
from agentwire.kafka.clients import make_consumer, make_producer
from agentwire.kafka.consume import ConsumeLoop, Record, Reject
from agentwire.kafka.deadletters import DeadLetters
from agentwire.kafka.errors import backoff, delivered, kafka_away
from agentwire.kafka.partitioning import parse_position_id, partition_for, position_id

__all__ = [
    "ConsumeLoop",
    "DeadLetters",
    "Record",
    "Reject",
    "backoff",
    "delivered",
    "ensure_topics",
    "kafka_away",
    "make_consumer",
    "make_producer",
    "parse_position_id",
    "partition_for",
    "position_id",
]
