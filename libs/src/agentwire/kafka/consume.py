"""The one consume loop every aiokafka-based service uses.

It owns fetching, handing each record to the service's handler, the dead-letter
decision (a handler raises ``Reject`` or the schema's ``DecodeError``), committing
after the whole batch succeeded, and the consumed-records metric. A handler that
raises anything else stops the loop without committing: the records come again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from agentwire.kafka.deadletters import DeadLetters
from agentwire.kafka.metrics import counter
from agentwire.schema import DecodeError

log = logging.getLogger(__name__)

Record = ConsumerRecord[bytes, bytes]
Handler = Callable[[Record], Awaitable[None]]


class Reject(Exception):
    """Raised by a handler for a record that must go to the dead-letter topic."""


class ConsumeLoop:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handler: Handler,
        *,
        service: str,
        dead_letters: DeadLetters | None = None,
        commit: bool = True,
        max_records: int = 500,
        on_batch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._dead_letters = dead_letters
        self._commit = commit
        self._max_records = max_records
        self._on_batch = on_batch
        self._consumed = counter(
            f"agentwire_{service}_records_consumed_total", "Records consumed from Kafka", ["topic"]
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=100, max_records=self._max_records)
            for tp, records in batches.items():
                for record in records:
                    await self._handle(record)
                self._consumed.labels(tp.topic).inc(len(records))
            if self._on_batch is not None:
                await self._on_batch()
            if self._commit and batches:
                await self._consumer.commit()

    async def _handle(self, record: Record) -> None:
        try:
            await self._handler(record)
        except (Reject, DecodeError) as exc:
            if self._dead_letters is None:
                log.warning("dropping %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
                return
            await self._dead_letters.send(record, str(exc))
