"""Producer and consumer factories with agentwire's defaults."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agentwire.service.settings import KafkaSettings


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas and lingers 1 ms (latency first)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "acks": "all",
        "linger_ms": 1,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": kafka.request_timeout_ms,
        "retry_backoff_ms": 100,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    kafka: KafkaSettings, *topics: str, group_id: str | None = None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer; without ``group_id`` it is assigned partitions by hand."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 50,
        "retry_backoff_ms": 100,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
