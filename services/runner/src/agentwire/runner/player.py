"""Plays one task's scenario: paces steps, honours control at checkpoints, emits events.

Every emitted event gets the id ``<workflow_id>:<n>`` where n counts the events the
play emitted, so a replay of the same task (another runner taking over) emits the
same ids and the processor drops what it has already sequenced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agentwire.runner.scenarios import steps_for
from agentwire.runner.script import Options, Step, rng_for
from agentwire.schema import CancelTask, PauseTask, RawEvent, ResumeTask, TaskSubmitted
from agentwire.schema import EventType as T

log = logging.getLogger(__name__)

Emit = Callable[[RawEvent], Awaitable[None]]


class Control:
    """Control requests for one running task, read at checkpoints."""

    def __init__(self) -> None:
        self.cancel: CancelTask | None = None
        self.pause: PauseTask | None = None
        self.changed = asyncio.Event()

    def apply(self, command: CancelTask | PauseTask | ResumeTask) -> None:
        if isinstance(command, CancelTask):
            self.cancel = command
        elif isinstance(command, PauseTask):
            self.pause = command
        else:
            self.pause = None
        self.changed.set()


class Player:
    def __init__(self, task: TaskSubmitted, emit: Emit, *, default_speed: float) -> None:
        self.task = task
        self.control = Control()
        self._emit = emit
        self._options = Options.from_task(task, default_speed)
        self._default_speed = default_speed
        self._count = 0

    def replay(self) -> Player:
        """A fresh play of the same task, sharing this one's control requests."""
        again = Player(self.task, self._emit, default_speed=self._default_speed)
        again.control = self.control
        return again

    async def play(self) -> None:
        steps = steps_for(self.task, self._options, rng_for(self.task))
        was_paused = False
        for index, step in enumerate(steps):
            if index > 0:
                outcome = await self._checkpoint(step.name)
                if outcome == "cancelled":
                    return
                was_paused = was_paused or outcome == "resumed"
            if step.name == self._options.stall_at:
                log.info("%s: stalling at %s (context.stall_at)", self.task.workflow_id, step.name)
                await self._stall(step.name)
                return
            if step.name == self._options.fail_at:
                await self._fail(step)
                return
            await self._pace(step.delay)
            await self._send(step, task=self.task if index == 0 else None)

    async def _checkpoint(self, name: str) -> str:
        control = self.control
        if control.cancel is not None:
            await self._cancel(name, was_paused=False)
            return "cancelled"
        if control.pause is None:
            return "continue"
        await self._send(Step(T.WORKFLOW_PAUSING, name, "orchestrator", "Pausing workflow",
                              payload={"reason": control.pause.reason}))
        await self._send(Step(T.WORKFLOW_PAUSED, name, "orchestrator", "Workflow paused",
                              payload={"checkpoint": name, "reason": control.pause.reason}))
        while control.pause is not None and control.cancel is None:
            control.changed.clear()
            await control.changed.wait()
        if control.cancel is not None:
            await self._cancel(name, was_paused=True)
            return "cancelled"
        await self._send(Step(T.WORKFLOW_RESUMED, name, "orchestrator", "Workflow resumed",
                              payload={"checkpoint": name}))
        return "resumed"

    async def _stall(self, checkpoint: str) -> None:
        """Emit nothing more (the processor times the workflow out), but still obey a cancel."""
        control = self.control
        while control.cancel is None:
            control.changed.clear()
            await control.changed.wait()
        await self._cancel(checkpoint, was_paused=False)

    async def _cancel(self, checkpoint: str, *, was_paused: bool) -> None:
        reason = self.control.cancel.reason if self.control.cancel else ""
        await self._send(Step(T.WORKFLOW_CANCELLING, checkpoint, "orchestrator", "Cancelling workflow",
                              payload={"reason": reason}))
        await self._send(Step(T.WORKFLOW_CANCELLED, checkpoint, "orchestrator", "Workflow cancelled",
                              payload={"checkpoint": checkpoint, "was_paused": was_paused, "reason": reason}))

    async def _fail(self, step: Step) -> None:
        message = f"Injected failure at step {step.name}"
        await self._send(Step(T.ERROR_OCCURRED, step.name, step.agent_id, message, payload={"step": step.name}))
        await self._send(Step(T.WORKFLOW_FAILED, step.name, "orchestrator", message,
                              payload={"error": message, "step": step.name}))

    async def _pace(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay / self._options.speed)

    async def _send(self, step: Step, task: TaskSubmitted | None = None) -> None:
        self._count += 1
        payload: dict[str, Any] | None = step.payload
        event = RawEvent(
            event_id=f"{self.task.workflow_id}:{self._count}",
            workflow_id=self.task.workflow_id,
            type=step.type,
            agent_id=step.agent_id,
            message=step.message,
            payload=payload,
            task=task,
        )
        await self._emit(event)
