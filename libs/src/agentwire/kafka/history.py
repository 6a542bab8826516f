"""Reading a workflow's past records from a topic (the events topic unless told otherwise).

A small pool of hand-assigned consumers serves every history read of the process:
each read borrows one, seeks the workflow's partition and reads up to the end
offset it found when it started.

Each reader is assigned every partition once, at start, and keeps them paused but for the one
it reads. (Assigning per read, as it once did, built a new aiokafka ``Assignment`` each time, whose
partition states point back at it: a reference cycle per read that only a full garbage collection
frees — in an edge, whose collector runs full collections rarely (``edge/heap.py``), a steady
growth of about 1.5 MB a minute at ten history reads a second.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from agentwire.kafka.clients import make_consumer
from agentwire.kafka.consume import Record
from agentwire.kafka.partitioning import partition_for
from agentwire.schema import TaskState
from agentwire.service.settings import KafkaSettings

CLOCK_SKEW = timedelta(seconds=5)
READ_BATCH = 2000  # records per fetch: bounds the memory one history read holds


def start_point(state: TaskState) -> int | datetime:
    """What ``EventLog.start_offset`` needs of a state: its first event's offset if known, else a time
    safely before it (a session keeps this instead of the whole state while it waits for a reader)."""
    return state.first_offset if state.first_offset is not None else state.task.created_at - CLOCK_SKEW


class EventLog:
    def __init__(self, kafka: KafkaSettings, *, readers: int = 4, topic: str | None = None) -> None:
        self._kafka = kafka
        self._topic = topic or kafka.topics.events
        self._size = readers
        self._pool: asyncio.Queue[AIOKafkaConsumer] = asyncio.Queue()
        self._all: list[AIOKafkaConsumer] = []

    async def start(self) -> None:
        every = [TopicPartition(self._topic, p) for p in range(self._kafka.partitions)]
        for _ in range(self._size):
            consumer = make_consumer(self._kafka, fetch_max_wait_ms=10, max_partition_fetch_bytes=1024 * 1024)
            await consumer.start()
            consumer.assign(every)
            consumer.pause(*every)  # nothing is fetched until a read resumes its partition...
            for tp in every:
                consumer.seek(tp, 0)  # ...which it seeks first (a position now spares a look-up per partition)
            self._all.append(consumer)
            self._pool.put_nowait(consumer)

    async def stop(self) -> None:
        for consumer in self._all:
            await consumer.stop()
        self._all.clear()

    def partition_of(self, workflow_id: str) -> int:
        return partition_for(workflow_id, self._kafka.partitions)

    @contextlib.asynccontextmanager
    async def _borrow(self) -> AsyncIterator[AIOKafkaConsumer]:
        consumer = await self._pool.get()
        try:
            yield consumer
        finally:
            self._pool.put_nowait(consumer)

    async def end_offset(self, partition: int) -> int:
        tp = TopicPartition(self._topic, partition)
        async with self._borrow() as consumer:
            return (await consumer.end_offsets([tp]))[tp]

    async def start_offset(self, state: TaskState) -> int:
        """Where the workflow's first event is, or an offset safely before it."""
        return await self.offset_at(state.workflow_id, start_point(state))

    async def offset_at(self, workflow_id: str, point: int | datetime) -> int:
        """The offset of a ``start_point``: the offset itself, or the search from its time.

        The end offset is read BEFORE the time search: if the search finds nothing, no
        event of the workflow existed when it ran, so that earlier end is safely before
        the first one. (An end read after the search would skip events written in
        between, and the stream would then wait for a seq 1 it had skipped.)
        """
        if isinstance(point, int):
            return point
        return await self.offset_since(workflow_id, point)

    async def offset_since(self, workflow_id: str, since: datetime) -> int:
        """The first offset of the workflow's partition written at or after ``since`` (else the end)."""
        tp = TopicPartition(self._topic, self.partition_of(workflow_id))
        async with self._borrow() as consumer:
            end = (await consumer.end_offsets([tp]))[tp]
            found = await consumer.offsets_for_times({tp: _millis(since)})
            hit = found.get(tp)
            return int(hit.offset) if hit is not None else int(end)

    async def read(
        self, workflow_id: str, start: int, *, until: int | None = None
    ) -> AsyncIterator[list[Record]]:
        """Yield batches of the workflow's records in [start, until or current end).

        A reader is borrowed per fetch and returned before the batch is yielded,
        so a slow caller never holds one.
        """
        tp = TopicPartition(self._topic, self.partition_of(workflow_id))
        key = workflow_id.encode()
        if until is None:
            until = await self.end_offset(tp.partition)
        position = start
        while position < until:
            async with self._borrow() as consumer:
                resumed = consumer.assignment() - consumer.paused()
                if resumed != {tp} or await consumer.position(tp) != position:
                    consumer.pause(*resumed)  # what an abandoned read left fetching
                    consumer.seek(tp, position)  # drops what the reader prefetched
                    consumer.resume(tp)
                batches = await consumer.getmany(tp, timeout_ms=1000, max_records=READ_BATCH)
                records = batches.get(tp, [])
                if records:
                    position = records[-1].offset + 1
                else:
                    position = max(position, await consumer.position(tp))
                if position >= until:
                    # done: a resumed reader would go on fetching in the background (at the end of a
                    # partition, an empty fetch round trip every fetch_max_wait_ms, for nobody)
                    consumer.pause(tp)
            mine = [r for r in records if r.key == key and r.offset < until]
            if mine:
                yield mine


    async def follow(self, workflow_id: str, start: int, *, wait_ms: int = 500) -> AsyncIterator[list[Record]]:
        """Yield the workflow's records from ``start`` on, as they are written, until the caller stops.

        Each fetch waits up to ``wait_ms`` for new records and yields what it got, possibly
        nothing, so the caller can send keepalives.
        """
        key = workflow_id.encode()
        async with contextlib.aclosing(self.follow_partition(self.partition_of(workflow_id), start,
                                                             wait_ms=wait_ms)) as batches:
            async for batch in batches:
                yield [r for r in batch if r.key == key]

    async def follow_partition(self, partition: int, start: int, *, wait_ms: int = 500) -> AsyncIterator[list[Record]]:
        """Yield every record of ``partition`` from ``start`` on, as they are written (empty when none came).

        A follow lasts as long as what it follows (minutes), so it has a consumer of its own rather
        than a pooled reader (≈ 30 ms to start).
        """
        tp = TopicPartition(self._topic, partition)
        consumer = make_consumer(self._kafka, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while True:
                batches = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=READ_BATCH)
                yield batches.get(tp, [])
        finally:
            await consumer.stop()


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
