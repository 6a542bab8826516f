"""One play's events as raw records: what became ready while a record was in flight travels as one frame.

A play emits events one at a time. The first one is sent at once; while its record is
in flight (handed to the producer, not yet acknowledged by Kafka), the events the play
emits meanwhile wait and then leave together as one frame: a JSON array of that
workflow's events in one record. Natural batching, no timer: at light load every frame
holds one event and nothing waits; under load the processor's per-record cost is shared
by the events of a frame. Every event keeps its own id, so dedupe and replay stay per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agentwire.schema import RawEvent

MAX_FRAME_EVENTS = 64
MAX_FRAME_BYTES = 256 * 1024  # well under the broker's default 1 MB record limit

Send = Callable[[list[RawEvent]], Awaitable["asyncio.Future[Any]"]]


class Framer:
    """Sends one play's events in order, framing those that are ready together."""

    def __init__(self, send: Send, *, on_frame: Callable[[int], None] | None = None) -> None:
        self._send = send
        self._on_frame = on_frame
        self._ready: list[RawEvent] = []
        self._ready_bytes = 0
        self._pump: asyncio.Task[None] | None = None
        self._deliveries: list[asyncio.Future[Any]] = []

    async def emit(self, event: RawEvent) -> None:
        self._ready.append(event)
        self._ready_bytes += _size(event)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._ready:
            frame = self._take()
            delivery = await self._send(frame)
            self._deliveries.append(delivery)
            if self._on_frame is not None:
                self._on_frame(len(frame))
            await asyncio.wait([delivery])  # in flight: what the play emits now joins the next frame
            if delivery.exception() is not None:
                return  # the failure surfaces in flush(); the play is replayed whole

    def _take(self) -> list[RawEvent]:
        ready = self._ready
        if len(ready) <= MAX_FRAME_EVENTS and self._ready_bytes <= MAX_FRAME_BYTES:
            self._ready, self._ready_bytes = [], 0
            return ready
        count, size = 0, 0
        for event in ready[:MAX_FRAME_EVENTS]:
            size += _size(event)
            if count and size > MAX_FRAME_BYTES:
                break
            count += 1
        frame, self._ready = ready[:count], ready[count:]
        self._ready_bytes = sum(_size(event) for event in self._ready)
        return frame

    async def flush(self) -> None:
        """Wait until every emitted event is acknowledged by Kafka; raise the first failed send's error."""
        while self._pump is not None and not self._pump.done():
            await self._pump
        if self._pump is not None:
            self._pump.result()
        for delivery in self._deliveries:
            await delivery


def _size(event: RawEvent) -> int:
    """A cheap upper bound of an event's encoded size (its message dominates)."""
    size = 512 + len(event.message or "")
    if event.payload:
        size += len(str(event.payload))
    if event.task is not None:
        size += len(event.task.query) + len(str(event.task.context))
    return size
