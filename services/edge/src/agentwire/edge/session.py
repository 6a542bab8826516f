"""One client's stream, independent of SSE or WebSocket framing.

History then live, with no gap and no duplicate at the hand-over:

1. subscribe to the live tail first (it queues everything from now on);
2. read history from Kafka, from the resume point up to the end offset found
   after subscribing;
3. deliver queued live records, skipping offsets already delivered.

A subscriber whose queue overflows goes back to step 2 from its own position.
Events pass only in seq order (seq == last + 1), which also drops any duplicate
the processor may have written after a crash.

A workflow that has ended (or whose state is gone) but whose end the history did
not contain will never send anything: its events expired or were never written.
After a grace period for late writes the session stops with ``gone`` set, and the
route answers the documented error instead of waiting forever.

Once the queue is drained, with no await in between, the session hands the
subscription itself as its direct writer (writing through a ``Wire``, see wire.py)
and from then on the live tail writes to the client, keepalives included; the
session sleeps until the stream ends or the client falls behind (back to step 2)
or leaves.

A session is held per client for as long as the client stays, so it keeps what it
needs and no more (``__slots__``, no TaskState once started, no timer while the
tail writes for it): docs/performance.md, "Memory per held SSE client".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Protocol

from agentwire.edge.delivery import Delivery
from agentwire.edge.hub import LiveHub, Subscription
from agentwire.edge.metrics import HISTORY_READ, HISTORY_SKIPPED, observe_write
from agentwire.edge.resume import Resume
from agentwire.edge.wire import Wire
from agentwire.kafka.history import EventLog, start_point
from agentwire.schema import TaskState
from agentwire.store import TaskStore

log = logging.getLogger(__name__)

__all__ = ["Delivery", "Sink", "StreamSession"]

MAX_WRITE_EVENTS = 256  # one write holds at most this many events (bounds a stalled client's buffer)


class Sink(Protocol):
    async def send(self, batch: list[Delivery]) -> None: ...
    async def keepalive(self) -> None: ...

    @property
    def wire(self) -> Wire | None:
        """The client's direct writer for the live tail (None: the session writes everything itself)."""


class StreamSession:
    __slots__ = ("_buffer_size", "_gone_grace_s", "_hub", "_keepalive_s", "_last_seq", "_last_seq_at_start", "_log",
                 "_next_offset", "_partition", "_protocol", "_resume", "_skip_through", "_start_point", "_states",
                 "_sub", "_terminal_at_start", "_types", "_wire", "_workflow_id", "finished", "gone")

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
        states: TaskStore,
        gone_grace_s: float = 2.0,
    ) -> None:
        self._hub = hub
        self._log = log_
        self._workflow_id = state.workflow_id
        # not the TaskState: a client's decoded copy was a fifth of its memory (10,000 clients of one workflow
        # held 10,000 copies), and many clients wait for a history reader at once when they connect
        self._start_point: int | datetime | None = start_point(state)
        self._terminal_at_start = state.status.terminal
        self._last_seq_at_start = state.last_seq
        self._resume = resume
        self._types = types
        self._buffer_size = buffer_size
        self._keepalive_s = keepalive_s
        self._states = states  # the workflow's current state, when the session needs it
        self._gone_grace_s = gone_grace_s
        self._partition = log_.partition_of(state.workflow_id)
        self._last_seq: int | None = resume.after_seq if resume.position is None else None
        # a resume position in this workflow's partition: events up to it are skipped, seq noted
        self._skip_through = resume.position[1] if resume.position and resume.position[0] == self._partition else None
        self._next_offset = 0
        self._sub: Subscription | None = None
        self._wire: Wire | None = None
        self._protocol = ""
        self.finished = False
        self.gone = False  # ended without its end in Kafka: expired or never written

    async def run(self, sink: Sink, protocol: str) -> None:
        """Stream until STREAM_END has been delivered (then ``finished`` is True) or the client leaves."""
        sub = await self._hub.subscribe(self._workflow_id, self._partition, self._buffer_size)
        self._sub, self._wire, self._protocol = sub, sink.wire, protocol
        try:
            self._next_offset = await self._start_offset()
            self._start_point = None
            while not self.finished:
                sub.rejoin()
                await self._catch_up(sink, protocol)
                if self.finished or await self._ended_before_resume_point():
                    self.finished = True
                    return
                if await self._ended_elsewhere() and await self._nothing_more(sub, sink, protocol):
                    self.gone = True
                    return
                while not self.finished and not sub.overflowed:
                    await self._live(sub, sink, protocol)
                    if sub.direct is not None:
                        # the tail writes to the client, keepalives included, until it stops and wakes us
                        # (awaited here, without a frame of its own: this is where a held client sleeps)
                        await sub.woken()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError: the client left
            log.debug("client of %s left", self._workflow_id)
        finally:
            self._hub.unsubscribe(sub)
            self._sub = self._wire = None

    async def _start_offset(self) -> int:
        if self._resume.position is not None:
            partition, offset = self._resume.position
            if partition == self._partition:
                return offset
        assert self._start_point is not None
        return await self._log.offset_at(self._workflow_id, self._start_point)

    async def _catch_up(self, sink: Sink, protocol: str) -> None:
        """Deliver ``[next offset, end)``: the recent-events cache where it reaches, Kafka elsewhere."""
        end = await self._log.end_offset(self._partition)
        workflow_id = self._workflow_id
        start = self._next_offset
        tail = self._hub.position(self._partition)
        cached = self._hub.cache.slice(workflow_id, start, end, tail) if tail is not None else None
        if cached is None:
            if tail is not None and self._absent(start, min(tail, end)):
                self._next_offset = max(self._next_offset, min(tail, end))
            await self._from_kafka(start, end, sink, protocol)
        else:
            lo, hi, items = cached
            if start < lo and not self._absent(start, lo):
                await self._from_kafka(start, lo, sink, protocol)
            if not self.finished and items:
                HISTORY_READ.labels("cache").inc(len(items))
                await self._deliver(items, sink, protocol)
            self._next_offset = max(self._next_offset, hi)
            if not self.finished and hi < end:
                await self._from_kafka(hi, end, sink, protocol)
        self._next_offset = max(self._next_offset, end)

    def _absent(self, start: int, until: int) -> bool:
        """Known to hold none of the workflow's events, by what the live tail looked at: no read needed
        (a task's first client, say, whose start is a time search a few seconds before the task)."""
        if start < until and self._hub.sightings.absent(self._partition, self._workflow_id, start, until):
            HISTORY_SKIPPED.inc()
            return True
        return False

    async def _from_kafka(self, start: int, until: int, sink: Sink, protocol: str) -> None:
        """Read ``[start, until)`` from Kafka; a complete read also warms the cache."""
        start = max(start, self._next_offset)
        if start >= until:
            return
        cache = self._hub.cache
        # what this read keeps to fill the cache: bounded by a budget shared by all reads
        read: list[Delivery] | None = [] if cache.enabled else None
        held = 0
        reader = self._log.read(self._workflow_id, start, until=until)
        try:
            async with contextlib.aclosing(reader):
                async for records in reader:
                    items = [item for item in map(Delivery.of, records) if item is not None]
                    if read is not None:
                        size = sum(item.size() for item in items)
                        if len(read) + len(items) <= cache.max_events and cache.reserve(size):
                            held += size
                            read.extend(items)
                        else:  # too long to cache: keep nothing (a slow client's lag stays in Kafka)
                            read = None
                            cache.release(held)
                            held = 0
                    HISTORY_READ.labels("kafka").inc(len(items))
                    await self._deliver(items, sink, protocol)
                    if self.finished:
                        break
            if read is not None and (not self.finished or read and read[-1].type == "STREAM_END"):
                cache.fill(self._workflow_id, self._partition, start, until, read,
                           self._hub.position(self._partition))
        finally:
            cache.release(held)
        self._next_offset = max(self._next_offset, until)

    async def _live(self, sub: Subscription, sink: Sink, protocol: str) -> None:
        """Deliver what queued during the catch-up; return once the tail writes directly (``sub.direct``),
        the session has finished or the client fell behind."""
        while not self.finished and not sub.overflowed:
            if sub.gone:
                raise ConnectionResetError("client gone")
            if sub.queue:
                await self._deliver(sub.take(), sink, protocol)
                continue
            if self._wire is not None:
                sub.direct = self  # nothing queued and no await since the check: the tail takes over from here
                return
            try:
                async with asyncio.timeout(self._keepalive_s):
                    await sub.woken()
            except TimeoutError:
                await sink.keepalive()

    # the subscription's direct writer (hub.DirectWriter), called by the tail, synchronously

    def write(self, items: list[Delivery]) -> bool:
        """Write what this client gets of ``items``; False when the session must take over again."""
        batch = self._select(items)
        sub, wire = self._sub, self._wire
        assert sub is not None and wire is not None
        if batch:
            if not wire.write(batch):
                sub.overflowed = True
            self._hub.written.add(self._protocol, batch)
        return not self.finished and not sub.overflowed

    def keepalive(self) -> None:
        assert self._wire is not None
        self._wire.keepalive()

    def _select(self, items: list[Delivery]) -> list[Delivery]:
        """The events of ``items`` this client gets next, in seq order; advances the session's position."""
        batch: list[Delivery] = []
        skip_through = self._skip_through
        types = self._types
        for item in items:
            if item.offset < self._next_offset:
                continue  # delivered already (before a hand-over or a re-read)
            self._next_offset = item.offset + 1
            if skip_through is not None and item.offset <= skip_through:
                self._last_seq = item.seq
                continue
            if self._last_seq is not None and item.seq != self._last_seq + 1:
                continue
            self._last_seq = item.seq
            if item.type == "STREAM_END":
                self.finished = True
            if types is None or item.type in types:
                batch.append(item)
            if self.finished:
                break
        return batch

    async def _deliver(self, items: list[Delivery], sink: Sink, protocol: str) -> None:
        """Write the next events of ``items`` through the sink, at most MAX_WRITE_EVENTS per write."""
        batch = self._select(items)
        for start in range(0, len(batch), MAX_WRITE_EVENTS):
            part = batch[start:start + MAX_WRITE_EVENTS]
            await sink.send(part)
            observe_write(protocol, part, time.time())

    async def _ended_before_resume_point(self) -> bool:
        """A resume after the last event of a finished workflow: nothing more will come."""
        state = await self._states.get(self._workflow_id)
        terminal, last_seq = ((state.status.terminal, state.last_seq) if state is not None
                              else (self._terminal_at_start, self._last_seq_at_start))
        return terminal and self._last_seq is not None and self._last_seq >= last_seq > 0

    async def _ended_elsewhere(self) -> bool:
        """The workflow has ended (or its state is gone), though its history up to now had no end."""
        state = await self._states.get(self._workflow_id)
        return state is None or state.status.terminal

    async def _nothing_more(self, sub: Subscription, sink: Sink, protocol: str) -> bool:
        """True if, after a grace period for late writes and a last read of the history, the end never came.

        The processor writes a workflow's last events with (or before) its final state, so an end
        that is not in Kafka by then never will be.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gone_grace_s
        while not self.finished and not sub.overflowed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if not sub.queue:
                try:
                    async with asyncio.timeout(remaining):
                        await sub.woken()
                except TimeoutError:
                    break
            items = [i for i in sub.take() if i.offset >= self._next_offset]
            if items:
                await self._deliver(items, sink, protocol)
        if self.finished or sub.overflowed:
            return False
        await self._catch_up(sink, protocol)
        return not self.finished
