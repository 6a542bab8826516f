"""The pipeline's writes to Kafka: records grouped by partition, handed to the producer as batches,
and waited for until Kafka has them — sent again while Kafka is away.

A send Kafka fails because it is away (an outage longer than the producer's request timeout, a
leader election) is sent again, whole partition by partition, until Kafka takes it; a copy that did
land after all is a duplicate readers drop by seq, like a replay's. Any other failure (a record too
large, a topic denied) is raised: the worker stops and a restart replays.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from agentwire.kafka import backoff, delivered, kafka_away
from agentwire.kafka.metrics import counter

log = logging.getLogger(__name__)

Records = dict[int, list[tuple[bytes, bytes | None]]]  # partition → (key, value or tombstone) in send order


@dataclass
class Changelog:
    """A table's changelog records to write; ``store`` is told their offsets once they are in Kafka."""

    topic: str
    records: Records
    store: Any = None


@dataclass
class Sending:
    """Records handed to the producer for one topic, and their deliveries (partition, future, count)."""

    topic: str
    records: Records
    sent: list[tuple[int, asyncio.Future[Any], int]]


class Producer(Protocol):
    """The parts of aiokafka's AIOKafkaProducer the pipeline uses."""

    def create_batch(self) -> Any: ...
    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]: ...
    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                   headers: Any = None) -> asyncio.Future[Any]: ...


class Sender:
    """Sends and settles the pipeline's records; ``producer`` is set once the worker's producer started."""

    def __init__(self) -> None:
        self.producer: Producer | None = None
        self._sent = counter("agentwire_processor_records_sent_total", "Records written, by topic", ["topic"])
        self._sent_to: dict[str, Any] = {}
        self._resends = counter("agentwire_processor_resends_total",
                                "Sends Kafka failed while away (outage, leader election) and the pipeline sent again")

    async def send(self, topic: str, records: Records) -> Sending:
        """Hand records to the producer as one batch per partition (several if one fills up)."""
        producer = self.producer
        assert producer is not None, "the pipeline's producer is not started"
        sent: list[tuple[int, asyncio.Future[Any], int]] = []
        for partition, items in records.items():
            builder = producer.create_batch()
            count = 0
            for key, value in items:
                if builder.append(key=key, value=value, timestamp=None) is None:
                    sent.append((partition, await producer.send_batch(builder, topic, partition=partition), count))
                    builder, count = producer.create_batch(), 0
                    if builder.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value or b'')} bytes does not fit a producer batch")
                count += 1
            sent.append((partition, await producer.send_batch(builder, topic, partition=partition), count))
            sent_to = self._sent_to.get(topic)
            if sent_to is None:
                sent_to = self._sent_to[topic] = self._sent.labels(topic)
            sent_to.inc(len(items))
        return Sending(topic, records, sent)

    async def settle(self, sending: Sending) -> dict[int, list[tuple[int, int]]]:
        """Wait until Kafka has every record of ``sending``; a partition whose send failed because
        Kafka was away is sent again, whole. Returns each partition's (base offset, count) in order."""
        placed: dict[int, list[tuple[int, int]]] = {}
        for delay in backoff():
            failed: set[int] = set()
            error: BaseException | None = None
            for partition, delivery, count in sending.sent:
                try:
                    meta = await delivery
                except Exception as exc:
                    if not kafka_away(exc):
                        raise
                    failed.add(partition)
                    error = exc
                    continue
                placed.setdefault(partition, []).append((int(meta.offset), count))
            if not failed:
                break
            for partition in failed:
                placed.pop(partition, None)
            log.warning("Kafka failed a send to %s (%r); sending %d partitions again in %.1f s",
                        sending.topic, error, len(failed), delay)
            self._resends.inc()
            await asyncio.sleep(delay)
            sending = await self.send(sending.topic, {p: sending.records[p] for p in sorted(failed)})
        return placed

    async def send_one(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        """One record (a dead letter: the producer picks its partition), sent again while Kafka is away."""
        producer = self.producer
        assert producer is not None, "the pipeline's producer is not started"
        await delivered(lambda: producer.send(topic, value, key=key, headers=headers), f"a record to {topic}",
                        self._resends.inc)
