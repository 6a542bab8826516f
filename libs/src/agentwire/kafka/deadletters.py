"""The dead-letter topic: records that could not be decoded or processed, with why."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from agentwire.kafka.metrics import counter

log = logging.getLogger(__name__)


class DeadLetters:
    """Sends rejected records to the DLQ topic with the reason in headers."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, service: str) -> None:
        self._producer = producer
        self._topic = topic
        self._service = service
        self._count = counter(
            f"agentwire_{service}_dlq_records_total", "Records sent to the dead-letter topic", ["source_topic"]
        )

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason[:500]
        )
        headers = [
            ("reason", reason[:2000].encode()),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("service", self._service.encode()),
        ]
        await self._producer.send_and_wait(self._topic, record.value, key=record.key, headers=headers)
        self._count.labels(record.topic).inc()
