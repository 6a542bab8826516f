"""Writes sequenced events straight to a stack's topics, as the processor would.

Used by the edge's integration tests and benchmarks: it makes the edge serve a
workflow of any length at any rate without a runner or processor in the way.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from agentwire.schema import Event, TaskState, TaskStatus, Topics, encode, utcnow
from agentwire.schema.commands import TaskSubmitted

TENANT = "default"  # the tenant of anonymous callers when auth is skipped


class Feed:
    """One producer; ``declare`` a workflow, then ``emit`` its events in seq order.

    With ``channel_header`` every event record also names its workflow in that header, so that a
    Centrifugo reading the same topic publishes it into the workflow's channel (tests/bench/centrifugo.py).
    """

    def __init__(self, bootstrap: str, prefix: str, *, channel_header: str | None = None) -> None:
        self.topics = Topics(prefix)
        self.channel_header = channel_header
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=1,
                                         max_batch_size=512 * 1024)
        self._seq: dict[str, int] = {}

    async def __aenter__(self) -> Feed:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def declare(self, workflow_id: str | None = None) -> str:
        """Publish a RUNNING TaskState so the edge knows the workflow; returns its id."""
        workflow_id = workflow_id or f"task-{uuid.uuid4().hex[:12]}"
        task = TaskSubmitted(workflow_id=workflow_id, tenant=TENANT, query="feed", session_id="s")
        state = TaskState(task=task, status=TaskStatus.RUNNING, updated_at=utcnow())
        await self.producer.send_and_wait(self.topics.task_state, encode(state), key=workflow_id.encode())
        self._seq[workflow_id] = 0
        return workflow_id

    async def emit(self, workflow_id: str, kind: str = "LLM_PARTIAL", *, wait: bool = False,
                   payload: dict[str, Any] | None = None, message: str = "x") -> int:
        """Send the workflow's next event; returns its seq."""
        seq = self._seq[workflow_id] = self._seq[workflow_id] + 1
        event = Event(workflow_id=workflow_id, type=kind, seq=seq, event_id=f"{workflow_id}:{seq}",
                      agent_id="a", message=message, payload=payload)
        key = workflow_id.encode()
        headers = [(self.channel_header, key)] if self.channel_header else None
        future = await self.producer.send(self.topics.events, encode(event), key=key, headers=headers)
        if wait:
            await future
        return seq

    async def finish(self, workflow_id: str) -> int:
        """Emit WORKFLOW_COMPLETED and STREAM_END, wait until written; returns the last seq."""
        await self.emit(workflow_id, "WORKFLOW_COMPLETED")
        last = await self.emit(workflow_id, "STREAM_END")
        await self.producer.flush()
        return last
