"""Ships the sequencer's outcomes, one batch at a time: outputs, then rows, then acks.

Order matters for crash safety. A raw event is acknowledged (and so its offset may
be committed, which faust does only after flushing the producer) only after its
batch's output events were delivered and the rows' snapshots, taken when the batch
was sequenced, were written to the table. A crash at any point therefore either
replays the event against an older row (same seq: readers drop the duplicate) or
finds it already remembered in the row.

Batching amortises the per-event costs (delivery waits, table writes, state
publishes, acks, metrics) and lets the sequencer work on the next batch while this
one is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, histogram
from agentwire.processor.row import Row
from agentwire.schema import CancelTask, Event, TaskState, TaskSubmitted, utcnow

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """What the raw events sequenced since the last shipment produced."""

    sent: list[tuple[Event, Awaitable[Any]]] = field(default_factory=list)  # outputs and their deliveries
    rows: dict[str, Row] = field(default_factory=dict)  # rows the batch advanced (live objects)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows as of the batch's close
    changed: set[str] = field(default_factory=set)  # workflows whose task state changed
    tasks: list[TaskSubmitted] = field(default_factory=list)  # tasks to (re)store
    commands: list[CancelTask] = field(default_factory=list)
    acks: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    size: int = 0  # raw records
    started: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        """Snapshot the rows now: later events advance the same Row objects in place."""
        self.snapshots = {workflow_id: row.dump() for workflow_id, row in self.rows.items()}


class Ports(Protocol):
    """What the shipper writes to; the faust app provides the real ones."""

    async def save_row(self, workflow_id: str, row: dict[str, Any]) -> None: ...
    async def save_task(self, task: TaskSubmitted) -> None: ...
    def load_task(self, workflow_id: str) -> TaskSubmitted | None: ...
    async def publish_state(self, state: TaskState) -> None: ...
    async def publish_command(self, command: CancelTask) -> None: ...


class Shipper:
    """Ships what the sequencer adds to the open batch, one batch at a time.

    The sequencer adds every raw event's outcome to ``current`` (outputs already handed
    to the producer) and calls ``added``. Whenever the previous shipment is done, the
    open batch is closed and shipped: at light load a batch is one event (no added
    latency); under load it is everything sequenced while the previous one shipped.
    """

    def __init__(self, ports: Ports, *, max_batch: int = 5000) -> None:
        self._ports = ports
        self._max_batch = max_batch
        self.current = Batch()
        # Held by the sequencer while it adds one event (it awaits the producer meanwhile):
        # a batch must not close between a row's advance and the hand-over of its outputs.
        self.adding = asyncio.Lock()
        self._pending = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._first_offsets: dict[str, int] = {}
        self._derived = counter("agentwire_processor_events_derived_total", "Derived events published", ["type"])
        self._derived_by_type: dict[str, Any] = {}
        self._published = counter("agentwire_processor_events_published_total", "Sequenced events published")
        self._terminal = counter(
            "agentwire_processor_tasks_terminal_total", "Tasks that reached a terminal status", ["status"]
        )
        self._latency = histogram(
            "agentwire_processor_ship_seconds", "Raw event read to row saved", buckets=LATENCY_BUCKETS
        )

    async def added(self) -> None:
        """Signal that ``current`` grew; waits while it is full (backpressure)."""
        self._pending.set()
        if self.current.size >= self._max_batch:
            self._room.clear()
            await self._room.wait()

    async def run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            async with self.adding:
                batch, self.current = self.current, Batch()
                batch.close()
            self._room.set()
            await self._ship(batch)

    async def _ship(self, batch: Batch) -> None:
        changed = set(batch.changed)
        if batch.sent:
            derived: dict[str, int] = {}
            for event, delivery in batch.sent:
                meta = await delivery  # already a future: cheaper than gathering into a new one
                if event.seq == 1:
                    self._first_offsets[event.workflow_id] = int(meta.offset)
                    changed.add(event.workflow_id)
                if event.type == "STREAM_END" or event.event_id.count(":") >= 2:
                    derived[event.type] = derived.get(event.type, 0) + 1
            for kind, count in derived.items():
                self._derived_child(kind).inc(count)
            self._published.inc(len(batch.sent))
        for task in batch.tasks:
            await self._ports.save_task(task)
            changed.add(task.workflow_id)
        rows = batch.snapshots
        for workflow_id, snapshot in rows.items():
            first = self._first_offsets.get(workflow_id)
            if first is not None and snapshot.get("first_offset") is None:
                snapshot["first_offset"] = first
            await self._ports.save_row(workflow_id, snapshot)
        for workflow_id in changed & rows.keys():
            row = Row.model_validate(rows[workflow_id])
            task = self._ports.load_task(workflow_id)
            if task is not None:
                await self._ports.publish_state(state_of(task, row))
            if row.terminal:
                self._terminal.labels(row.status.value).inc()
                self._first_offsets.pop(workflow_id, None)
        for command in batch.commands:
            await self._ports.publish_command(command)
        for ack in batch.acks:
            await ack()
        self._latency.observe(time.monotonic() - batch.started)

    def _derived_child(self, kind: str) -> Any:
        child = self._derived_by_type.get(kind)
        if child is None:
            child = self._derived_by_type[kind] = self._derived.labels(kind)
        return child


def state_of(task: TaskSubmitted, row: Row) -> TaskState:
    return TaskState(
        task=task,
        status=row.status,
        progress=row.progress,
        result=row.result,
        error=row.error,
        model_used=row.model_used,
        provider=row.provider,
        usage=row.usage,
        control=row.control,
        last_seq=row.seq,
        first_offset=row.first_offset,
        updated_at=_dt(row.updated_at) or utcnow(),
        completed_at=_dt(row.completed_at),
    )


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
