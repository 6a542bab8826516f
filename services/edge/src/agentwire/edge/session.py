"""One client's stream, independent of SSE or WebSocket framing.

History then live, with no gap and no duplicate at the hand-over:

1. subscribe to the live tail first (it queues everything from now on);
2. read history from Kafka, from the resume point up to the end offset found
   after subscribing;
3. deliver queued live records, skipping offsets already delivered.

A subscriber whose queue overflows goes back to step 2 from its own position.
Events pass only in seq order (seq == last + 1), which also drops any duplicate
the processor may have written after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from agentwire.edge.hub import LiveHub, Subscription
from agentwire.edge.resume import Resume
from agentwire.kafka import Record, position_id
from agentwire.kafka.history import EventLog
from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, histogram
from agentwire.schema import DecodeError, Event, TaskState, decode, utcnow

log = logging.getLogger(__name__)

Delivery = tuple[Event, str]  # the event and its stream id

MAX_WRITE_EVENTS = 256  # one write holds at most this many events (bounds a stalled client's buffer)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Sink(Protocol):
    async def send(self, batch: list[Delivery]) -> None: ...
    async def keepalive(self) -> None: ...


class StreamSession:
    def __init__(
        self,
        hub: LiveHub,
        log_: EventLog,
        state: TaskState,
        resume: Resume,
        types: frozenset[str] | None,
        *,
        buffer_size: int,
        keepalive_s: float,
        current_state: Callable[[], TaskState | None],
    ) -> None:
        self._hub = hub
        self._log = log_
        self._state = state
        self._resume = resume
        self._types = types
        self._buffer_size = buffer_size
        self._keepalive_s = keepalive_s
        self._current_state = current_state
        self._partition = log_.partition_of(state.workflow_id)
        self._last_seq: int | None = resume.after_seq if resume.position is None else None
        self._next_offset = 0
        self.finished = False
        self._delivered = counter("agentwire_edge_events_delivered_total", "Events written to clients", ["protocol"])
        self._latency = histogram(
            "agentwire_edge_event_latency_seconds",
            "Event timestamp to written to the client",
            buckets=LATENCY_BUCKETS,
        )
        self._batch_sizes = histogram(
            "agentwire_edge_write_batch_events", "Events per write to a client", buckets=BATCH_BUCKETS
        )

    async def run(self, sink: Sink, protocol: str) -> None:
        """Stream until STREAM_END has been delivered (then ``finished`` is True)."""
        sub = await self._hub.subscribe(self._state.workflow_id, self._partition, self._buffer_size)
        try:
            self._next_offset = await self._start_offset()
            while not self.finished:
                sub.rejoin()
                await self._catch_up(sink, protocol)
                if self.finished or self._ended_before_resume_point():
                    self.finished = True
                    return
                await self._live(sub, sink, protocol)
        finally:
            self._hub.unsubscribe(sub)

    async def _start_offset(self) -> int:
        if self._resume.position is not None:
            partition, offset = self._resume.position
            if partition == self._partition:
                return offset
        return await self._log.start_offset(self._state)

    async def _catch_up(self, sink: Sink, protocol: str) -> None:
        end = await self._log.end_offset(self._partition)
        reader = self._log.read(self._state.workflow_id, self._next_offset, until=end)
        async with contextlib.aclosing(reader):
            async for records in reader:
                await self._deliver(records, sink, protocol)
                if self.finished:
                    return
        self._next_offset = max(self._next_offset, end)

    async def _live(self, sub: Subscription, sink: Sink, protocol: str) -> None:
        while not self.finished and not sub.overflowed:
            if not sub.queue:
                try:
                    await asyncio.wait_for(sub.wake.wait(), self._keepalive_s)
                except TimeoutError:
                    await sink.keepalive()
                    continue
            if sub.overflowed:
                return
            records = [r for r in sub.take() if r.offset >= self._next_offset]
            if records:
                await self._deliver(records, sink, protocol)

    async def _deliver(self, records: list[Record], sink: Sink, protocol: str) -> None:
        batch: list[Delivery] = []
        skip_through = self._resume_offset()
        for record in records:
            self._next_offset = record.offset + 1
            try:
                event = decode(Event, record.value)
            except DecodeError:
                log.warning("undecodable event at %d-%d", record.partition, record.offset)
                continue
            if skip_through is not None and record.offset <= skip_through:
                self._last_seq = event.seq
                continue
            if self._last_seq is not None and event.seq != self._last_seq + 1:
                continue
            self._last_seq = event.seq
            if event.type == "STREAM_END":
                self.finished = True
            if self._types is None or event.type in self._types:
                batch.append((event, position_id(record.partition, record.offset)))
            if self.finished:
                break
            if len(batch) >= MAX_WRITE_EVENTS:
                await self._write(batch, sink, protocol)
                batch = []
        if batch:
            await self._write(batch, sink, protocol)

    async def _write(self, batch: list[Delivery], sink: Sink, protocol: str) -> None:
        """One write per batch: what queued while the previous write was in flight goes together."""
        await sink.send(batch)
        self._delivered.labels(protocol).inc(len(batch))
        self._batch_sizes.observe(len(batch))
        now = utcnow()
        for event, _ in batch:
            self._latency.observe(max((now - event.timestamp).total_seconds(), 0.0))

    def _resume_offset(self) -> int | None:
        position = self._resume.position
        if position is None or position[0] != self._partition:
            return None
        return position[1]

    def _ended_before_resume_point(self) -> bool:
        """A resume after the last event of a finished workflow: nothing more will come."""
        state = self._current_state() or self._state
        return state.status.terminal and self._last_seq is not None and self._last_seq >= state.last_seq > 0


