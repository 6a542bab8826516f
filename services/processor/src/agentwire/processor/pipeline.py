"""Ships the sequencer's outcomes: outputs first, then the row, then the ack.

Order matters for crash safety. A raw event is acknowledged (and so its offset may
be committed, which faust does only after flushing the producer) only after its
output events were delivered and its row snapshot was written to the table. A crash
at any point therefore either replays the event against an older row (same seq:
readers drop the duplicate) or finds it already remembered in the row.
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
from agentwire.processor.sequencer import Outcome
from agentwire.schema import CancelTask, TaskState, TaskSubmitted, utcnow

log = logging.getLogger(__name__)


@dataclass
class Pending:
    outcome: Outcome
    snapshot: dict[str, Any] | None
    deliveries: list[Awaitable[Any]]
    ack: Callable[[], Awaitable[Any]]
    started: float = field(default_factory=time.monotonic)


class Ports(Protocol):
    """What the shipper writes to; the faust app provides the real ones."""

    def save_row(self, workflow_id: str, row: dict[str, Any]) -> None: ...
    def save_task(self, task: TaskSubmitted) -> None: ...
    def load_task(self, workflow_id: str) -> TaskSubmitted | None: ...
    async def publish_state(self, state: TaskState) -> None: ...
    async def publish_command(self, command: CancelTask) -> None: ...


class Shipper:
    def __init__(self, ports: Ports, *, max_pending: int = 20_000) -> None:
        self._ports = ports
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(max_pending)
        self._first_offsets: dict[str, int] = {}
        self._derived = counter("agentwire_processor_events_derived_total", "Derived events published", ["type"])
        self._published = counter("agentwire_processor_events_published_total", "Sequenced events published")
        self._terminal = counter(
            "agentwire_processor_tasks_terminal_total", "Tasks that reached a terminal status", ["status"]
        )
        self._latency = histogram(
            "agentwire_processor_ship_seconds", "Raw event read to row saved", buckets=LATENCY_BUCKETS
        )

    async def put(self, pending: Pending) -> None:
        await self._queue.put(pending)

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 2000:
                batch.append(self._queue.get_nowait())
            await self._ship(batch)

    async def _ship(self, batch: list[Pending]) -> None:
        rows: dict[str, dict[str, Any]] = {}
        changed: set[str] = set()
        for item in batch:
            outcome = item.outcome
            if item.deliveries:
                metadata = await asyncio.gather(*item.deliveries)
                for event, meta in zip(outcome.events, metadata, strict=True):
                    if event.seq == 1:
                        self._first_offsets[event.workflow_id] = int(meta.offset)
                        changed.add(event.workflow_id)
                    if event.event_id.count(":") >= 2 or event.type == "STREAM_END":
                        self._derived.labels(event.type).inc()
                self._published.inc(len(outcome.events))
            if outcome.task is not None:
                self._ports.save_task(outcome.task)
                changed.add(outcome.task.workflow_id)
            if item.snapshot is not None:
                workflow_id = item.snapshot["workflow_id"]
                rows[workflow_id] = item.snapshot
                if outcome.state_changed:
                    changed.add(workflow_id)
        for workflow_id, snapshot in rows.items():
            first = self._first_offsets.get(workflow_id)
            if first is not None and snapshot.get("first_offset") is None:
                snapshot["first_offset"] = first
            self._ports.save_row(workflow_id, snapshot)
        for workflow_id in changed & rows.keys():
            row = Row.model_validate(rows[workflow_id])
            task = self._ports.load_task(workflow_id)
            if task is not None:
                await self._ports.publish_state(state_of(task, row))
            if row.terminal:
                self._terminal.labels(row.status.value).inc()
                self._first_offsets.pop(workflow_id, None)
        for item in batch:
            for command in item.outcome.commands:
                await self._ports.publish_command(command)
            await item.ack()
            self._latency.observe(time.monotonic() - item.started)


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
