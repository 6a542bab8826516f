"""An in-memory view of the compacted task-state topic, for ingest and edge.

The view reads the whole topic from the beginning and keeps the latest TaskState
per workflow. ``lookup`` gives read-your-writes across pods: an id the view does not
know yet waits (bounded) until the view has applied everything up to the topic's
end offsets as they were when the lookup started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from agentwire.kafka.clients import make_consumer
from agentwire.kafka.metrics import gauge
from agentwire.schema import DecodeError, TaskState, decode
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)

Listener = Callable[[TaskState], None]


class TaskStateView:
    def __init__(self, kafka: KafkaSettings, *, service: str) -> None:
        self._kafka = kafka
        self._topic = kafka.topics.task_state
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._applied: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self.states: dict[str, TaskState] = {}
        self.ready = False
        self._size = gauge(f"agentwire_{service}_task_view_size", "Tasks held in the task-state view")

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        consumer = make_consumer(self._kafka)
        await consumer.start()
        self._consumer = consumer
        self._tps = [TopicPartition(self._topic, p) for p in range(self._kafka.partitions)]
        consumer.assign(self._tps)
        beginning = await consumer.beginning_offsets(self._tps)
        for tp in self._tps:
            consumer.seek(tp, beginning[tp])
            self._applied[tp] = beginning[tp]
        self._task = asyncio.create_task(self._run(), name="task-state-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def get(self, workflow_id: str) -> TaskState | None:
        return self.states.get(workflow_id)

    def put_local(self, state: TaskState) -> None:
        """Record a state this pod just wrote (read-your-writes on the writer)."""
        self.states.setdefault(state.workflow_id, state)

    async def lookup(self, workflow_id: str, timeout: float) -> TaskState | None:  # noqa: ASYNC109 - bounded wait
        """The task's state, waiting up to ``timeout`` for the view to catch up."""
        found = self.states.get(workflow_id)
        if found is not None:
            return found
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.catch_up(), timeout)
        return self.states.get(workflow_id)

    async def catch_up(self) -> None:
        """Wait until every record written before this call has been applied."""
        assert self._consumer is not None, "view not started"
        end = await self._consumer.end_offsets(self._tps)
        async with self._progress:
            await self._progress.wait_for(lambda: all(self._applied[tp] >= end[tp] for tp in self._tps))

    async def _run(self) -> None:
        assert self._consumer is not None
        first = asyncio.create_task(self._initial_catch_up())
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(record.value)
                    if records:
                        self._applied[tp] = records[-1].offset + 1
                    else:  # pragma: no cover - aiokafka returns no empty lists
                        continue
                if batches:
                    async with self._progress:
                        self._progress.notify_all()
                else:
                    await self._advance_idle_positions()
        finally:
            first.cancel()

    async def _advance_idle_positions(self) -> None:
        # Compaction and aborted writes can leave offsets with no record; when a
        # fetch is empty the consumer's position is the true applied point.
        assert self._consumer is not None
        moved = False
        for tp in self._tps:
            position = await self._consumer.position(tp)
            if position > self._applied[tp]:
                self._applied[tp] = position
                moved = True
        if moved:
            async with self._progress:
                self._progress.notify_all()

    async def _initial_catch_up(self) -> None:
        await self.catch_up()
        self.ready = True
        log.info("task-state view caught up: %d tasks", len(self.states))

    def _apply(self, value: bytes | None) -> None:
        try:
            state = decode(TaskState, value)
        except DecodeError as exc:
            log.warning("skipping undecodable task-state record: %s", exc)
            return
        self.states[state.workflow_id] = state
        self._size.set(len(self.states))
        for listener in self._listeners:
            listener(state)
