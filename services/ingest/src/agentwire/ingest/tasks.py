"""Submitting and steering tasks: what the routes call, free of HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from agentwire.ingest.faults import FaultHook
from agentwire.ingest.requests import SubmitTask
from agentwire.kafka import Record, partition_for, position_id
from agentwire.kafka.history import EventLog
from agentwire.kafka.metrics import counter
from agentwire.schema import (
    Approval,
    ApprovalDecision,
    CancelTask,
    DecodeError,
    Event,
    PauseTask,
    ResumeTask,
    SwarmMessage,
    TaskState,
    TaskStatus,
    TaskSubmitted,
    Topics,
    decode,
    encode,
)
from agentwire.store import TaskPage, TaskStore


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


class TaskService:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        store: TaskStore,
        log: EventLog,
        topics: Topics,
        *,
        lookup_timeout: float,
        partitions: int,
        fault: FaultHook | None = None,
    ) -> None:
        self._producer = producer
        self._store = store
        self._log = log
        self._topics = topics
        self._lookup_timeout = lookup_timeout
        self._partitions = partitions  # of every topic (ensure_topics checks the layout at start)
        self._fault = fault or FaultHook(None)
        self._resent = counter(
            "agentwire_ingest_submissions_resent_total",
            "TaskSubmitted commands sent again for an idempotent replay of a still-queued task",
        )

    async def find(self, workflow_id: str, tenant: str) -> TaskState | None:
        """The task if it exists and belongs to ``tenant`` (else None, identically)."""
        state = await self._store.lookup(workflow_id, self._lookup_timeout)
        if state is None or state.tenant != tenant:
            return None
        return state

    async def submit(
        self, body: SubmitTask, tenant: str, idempotency_key: str | None
    ) -> tuple[TaskState, bool]:
        """Queue a task; returns its state and whether it was an idempotent replay.

        A submission is one Kafka record, the TaskSubmitted command on the tasks topic: the
        processor admits it and publishes the task's first state (QUEUED) to the task-state
        topic, which the store indexes. So a crash at any point either loses the whole
        submission (the client had no answer and retries) or keeps all of it.
        """
        request_hash = _request_hash(body)
        if idempotency_key:
            workflow_id = _idempotent_id(tenant, idempotency_key)
            existing = await self._store.lookup(workflow_id, self._lookup_timeout)
            if existing is not None:
                if existing.tenant != tenant or existing.task.request_hash != request_hash:
                    raise IdempotencyConflict("Idempotency-Key was already used with a different request")
                if existing.status == TaskStatus.QUEUED:
                    await self._resend(existing)
                return existing, True
        else:
            workflow_id = f"task-{uuid.uuid4().hex}"
        task = TaskSubmitted(
            workflow_id=workflow_id,
            tenant=tenant,
            query=body.query,
            session_id=body.session_id or f"session-{uuid.uuid4().hex[:16]}",
            mode=(body.mode.value if body.mode else "standard"),
            context=body.context or {},
            model_tier=body.model_tier.value if body.model_tier else None,
            model_override=body.model_override,
            provider_override=body.provider_override,
            request_hash=request_hash,
        )
        self._fault.reached("before_send")
        delivery = await self._producer.send(self._topics.tasks, encode(task), key=workflow_id.encode(),
                                             partition=partition_for(workflow_id, self._partitions))
        self._fault.reached("after_send")
        await delivery
        self._fault.reached("after_ack")
        state = TaskState(task=task, status=TaskStatus.QUEUED, updated_at=task.created_at)
        # The store row is a copy of what the views derive, put there at once so every pod sees the
        # task before this returns; a crash before it only delays that until the processor admits.
        await self._store.put_submitted(state, encode(state))
        self._fault.reached("after_store")
        return state, False

    async def _resend(self, state: TaskState) -> None:
        """Send a still-queued task's command again: replays repair a submission whose command is missing.

        A QUEUED state whose command never reached the tasks topic (written by a version of
        ingest that wrote the state and the command separately and crashed in between) would
        otherwise wait forever. A duplicate command is harmless: the processor admits a task
        once, and the runner ignores a task it is already playing (a late replay's events are
        dropped by the processor as already seen).
        """
        await self._producer.send_and_wait(self._topics.tasks, encode(state.task), key=state.workflow_id.encode())
        self._resent.inc()

    async def approval(self, state: TaskState, approval_id: str) -> tuple[TaskState, Approval | None]:
        """The task's freshest state and the approval in it.

        A client learns an approval id from the stream, which can run a moment ahead of the task
        state (the processor publishes the state after the events): an approval the store does
        not hold yet is waited for, bounded by the read-your-writes timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lookup_timeout
        partition = self._log.partition_of(state.workflow_id)
        while True:
            state = await self._store.get(state.workflow_id) or state
            found = next((a for a in state.approvals if a.approval_id == approval_id), None)
            left = deadline - loop.time()
            if found is not None or left <= 0:
                return state, found
            await self._store.catch_up(left, [partition])
            await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))

    async def control(
        self, state: TaskState, command: CancelTask | PauseTask | ResumeTask | ApprovalDecision | SwarmMessage
    ) -> None:
        await self._producer.send_and_wait(self._topics.control, encode(command), key=state.workflow_id.encode())

    async def history(self, state: TaskState) -> list[dict[str, Any]]:
        """The workflow's events in seq order, each once, as clients see them."""
        events: list[dict[str, Any]] = []
        in_order = InOrder()
        start = await self._log.start_offset(state)
        async for batch in self._log.read(state.workflow_id, start):
            events.extend(in_order.take(batch))
        return events

    async def follow(self, state: TaskState) -> AsyncIterator[dict[str, Any] | None]:
        """The workflow's events from its first one, as they are written, until STREAM_END.

        Yields each event once, in seq order, as clients see them, and ``None`` when a wait
        for new events passed without any (so a streaming caller can send a keepalive).
        """
        in_order = InOrder()
        start = await self._log.start_offset(state)
        async with contextlib.aclosing(self._log.follow(state.workflow_id, start)) as batches:
            async for batch in batches:
                if not batch:
                    yield None
                for event in in_order.take(batch):
                    yield event
                    if event["type"] == "STREAM_END":
                        return

    @property
    def ready(self) -> bool:
        return self._store.ready

    async def list(
        self,
        tenant: str,
        *,
        status: TaskStatus | None,
        session_id: str | None,
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> TaskPage:
        """The tenant's tasks, newest first, including any submitted (on any pod) before this call.

        A submit puts its task in the store before it returns (``put_submitted``), so a list needs
        no wait for the indexers to see it.
        """
        return await self._store.list_tasks(
            tenant, status=status, session_id=session_id, limit=limit, offset=offset, cursor=cursor
        )


class InOrder:
    """One workflow's events in seq order, each once, as clients see them (a processor that crashed
    between writing an event and saving its row writes the same seq again: dropped here)."""

    def __init__(self) -> None:
        self.last_seq = 0

    def take(self, records: list[Record]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for record in records:
            try:
                event = decode(Event, record.value)
            except DecodeError:
                continue
            if event.seq != self.last_seq + 1:
                continue
            self.last_seq = event.seq
            out.append(event.public(position_id(record.partition, record.offset)))
        return out


def _request_hash(body: SubmitTask) -> str:
    canonical: dict[str, Any] = body.model_dump(mode="json")
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _idempotent_id(tenant: str, key: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x00{key}".encode()).hexdigest()[:32]
    return f"task-{digest}"
