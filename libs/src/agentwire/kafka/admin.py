"""Create agentwire's topics explicitly, all with the same partition count."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from agentwire.kafka.errors import TopicLayoutError
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)


def topic_configs(kafka: KafkaSettings) -> dict[str, dict[str, str]]:
    topics = kafka.topics
    retention_ms = str(int(kafka.retention_hours * 3600 * 1000))
    return {
        topics.tasks: {"retention.ms": retention_ms},
        topics.control: {"retention.ms": retention_ms},
        topics.events_raw: {"retention.ms": retention_ms},
        topics.events: {"retention.ms": retention_ms},
        topics.task_state: {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        topics.dlq: {"retention.ms": str(7 * 24 * 3600 * 1000)},
        topics.sessions: {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    }


async def ensure_topics(kafka: KafkaSettings, *, timeout_s: float = 60.0) -> None:
    """Create missing topics; fail if an existing one has another partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await _start_with_retry(admin, timeout_s)
    try:
        wanted = topic_configs(kafka)
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, kafka.partitions, kafka.replication_factor, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if new:
            response = await admin.create_topics(new)
            for name, code, *_ in response.topic_errors:
                if code == 0:
                    log.info("created topic %s (%d partitions)", name, kafka.partitions)
                elif code != TopicAlreadyExistsError.errno:
                    raise TopicLayoutError(f"cannot create topic {name}: Kafka error code {code}")
        await _check_layout(admin, list(wanted), kafka.partitions, timeout_s)
    finally:
        await admin.close()


async def _check_layout(admin: AIOKafkaAdminClient, names: list[str], partitions: int, timeout_s: float) -> None:
    """Every topic has ``partitions`` partitions (new topics may take a moment to show them)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        counts = {entry["topic"]: len(entry["partitions"]) for entry in described}
        wrong = {name: count for name, count in counts.items() if count != partitions}
        if not wrong:
            return
        if any(count > 0 for count in wrong.values()) or loop.time() > deadline:
            name, count = next(iter(wrong.items()))
            raise TopicLayoutError(f"topic {name} has {count} partitions, kafka.partitions is {partitions}")
        await asyncio.sleep(0.2)


async def _start_with_retry(admin: AIOKafkaAdminClient, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await admin.start()
            return
        except KafkaConnectionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)
