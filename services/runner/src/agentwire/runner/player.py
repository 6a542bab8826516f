"""Plays one task's scenario: paces steps, honours control at checkpoints, emits events.

Every emitted event gets the id ``<workflow_id>:<n>`` where n counts the events the
play emitted, so a replay of the same task (another runner taking over) emits the
same ids and the processor drops what it has already sequenced. The answer to a swarm
message has ids of its own, ``<workflow_id>:msg-<message_id>:<k>``, because messages
arrive at no fixed step.

At an approval gate the play waits for the approval's decision, still obeying cancel and
pause; a denial (by a human or by the processor's timeout) fails the workflow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from agentwire.runner.control import Command, Control
from agentwire.runner.scenarios import steps_for
from agentwire.runner.script import Options, Step, rng_for
from agentwire.schema import ApprovalDecision, RawEvent, SwarmMessage, TaskSubmitted, dumps, utcnow
from agentwire.schema import EventType as T

log = logging.getLogger(__name__)

Emit = Callable[[RawEvent], Awaitable[None]]
Recall = Callable[[TaskSubmitted], Awaitable[list[Command]]]


class Player:
    def __init__(self, task: TaskSubmitted, emit: Emit, *, default_speed: float,
                 approval_timeout_s: float = 600.0, recall: Recall | None = None) -> None:
        """``recall`` reads the task's past control commands back from Kafka (see ``ledger.py``)."""
        self.task = task
        self.control = Control()
        self._emit = emit
        self._options = Options.from_task(task, default_speed, approval_timeout_s)
        self._default_speed = default_speed
        self._approval_timeout_s = approval_timeout_s
        self._recall = recall
        self._count = 0
        self._reached = 0  # steps of the script this play got to
        self._unpaced = 0  # steps sent again at once: an earlier attempt already paced them

    def replay(self) -> Player:
        """A fresh play of the same task, sharing this one's control requests.

        It sends the steps the failed attempt got to again at once (same ids: the processor keeps
        what it already has) and paces only the rest: after an outage the stream picks up where it
        stopped instead of living the play's delays a second time.
        """
        again = Player(self.task, self._emit, default_speed=self._default_speed,
                       approval_timeout_s=self._approval_timeout_s, recall=self._recall)
        again.control = self.control
        again._unpaced = max(self._reached, self._unpaced)
        return again

    async def play(self) -> None:
        if self._recall is not None and self._options.waits_for_humans:
            self.control.recall(await self._recall(self.task))
        steps = steps_for(self.task, self._options, rng_for(self.task))
        for index, step in enumerate(steps):
            if index > 0:
                if await self._checkpoint(step.name) == "cancelled":
                    return
                if self._options.force_swarm:
                    await self._answer_messages()
            if step.gate == "approval":
                if not await self._approval_gate(step):
                    return
                continue
            if step.name == self._options.stall_at:
                log.info("%s: stalling at %s (context.stall_at)", self.task.workflow_id, step.name)
                await self._stall(step.name)
                return
            if step.name == self._options.fail_at:
                await self._fail(step)
                return
            self._reached = index
            if index >= self._unpaced:
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

    async def _approval_gate(self, step: Step) -> bool:
        """Wait for the decision, emit it; False when the play ends here (denied or cancelled)."""
        approval_id = str((step.payload or {})["approval_id"])
        decision = await self._await_decision(step.name, approval_id)
        if decision is None:
            return False
        timed_out = decision.requested_by == "timeout"
        if decision.approved:
            message = "Plan approved"
        else:
            message = "Approval timed out" if timed_out else "Plan denied"
        if decision.feedback:
            message += f": {decision.feedback}"
        await self._send(Step(T.APPROVAL_DECISION, step.name, "orchestrator", message,
                              payload={"approval_id": approval_id, "approved": decision.approved,
                                       "feedback": decision.feedback, "decided_by": decision.requested_by}))
        if decision.approved:
            return True
        reason = "approval_timeout" if timed_out else "approval_denied"
        error = "Approval timed out" if timed_out else f"Approval denied by {decision.requested_by or 'a reviewer'}"
        if decision.feedback and not timed_out:
            error += f": {decision.feedback}"
        await self._send(Step(T.WORKFLOW_FAILED, step.name, "orchestrator", error,
                              payload={"error": error, "reason": reason, "approval_id": approval_id}))
        return False

    async def _await_decision(self, checkpoint: str, approval_id: str) -> ApprovalDecision | None:
        """The approval's decision; None if the play was cancelled while waiting. Pauses are honoured."""
        control = self.control
        while True:
            control.changed.clear()
            decision = control.decisions.get(approval_id)
            if decision is not None:
                return decision
            if control.cancel is not None or control.pause is not None:
                if await self._checkpoint(checkpoint) == "cancelled":
                    return None
                continue
            if control.inbox and self._options.force_swarm:
                await self._answer_messages()
                continue
            await control.changed.wait()

    async def _answer_messages(self) -> None:
        """The swarm's lead receives each queued client message, decides, and answers."""
        while self.control.inbox:
            message = self.control.inbox.pop(0)
            await self._answer(message)

    async def _answer(self, message: SwarmMessage) -> None:
        ids = (f"{self.task.workflow_id}:msg-{message.message_id}:{k}" for k in range(1, 4))
        meta = {"message_id": message.message_id}
        text = message.message
        short = text if len(text) <= 80 else text[:77] + "..."
        steps = [
            Step(T.MESSAGE_RECEIVED, "message:receive", "lead", text,
                 payload={"from": "user", "to": "lead", "sent_by": message.requested_by, **meta}, delay=0.02),
            Step(T.LEAD_DECISION, "message:decide", "lead", "Taking the client's message into account",
                 payload={"decision": "acknowledge_message", **meta}, delay=0.05),
            Step(T.MESSAGE_SENT, "message:reply", "lead", f"Noted, the swarm will take into account: {short}",
                 payload={"from": "lead", "to": "user", "in_reply_to": message.message_id, **meta}, delay=0.03),
        ]
        for step, event_id in zip(steps, ids, strict=True):
            await self._pace(step.delay)
            await self._send(step, event_id=event_id)

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

    async def _send(self, step: Step, task: TaskSubmitted | None = None, *, event_id: str | None = None) -> None:
        if event_id is None:
            self._count += 1
            event_id = f"{self.task.workflow_id}:{self._count}"
        payload: dict[str, Any] | None = step.payload
        message = step.message
        if step.type == T.APPROVAL_REQUESTED and payload is not None and "timeout_s" in payload:
            payload, message = _approval_request(payload, message or "")
        event = RawEvent(
            event_id=event_id,
            workflow_id=self.task.workflow_id,
            type=step.type,
            agent_id=step.agent_id,
            message=message,
            payload=payload,
            task=task,
        )
        await self._emit(event)


def _approval_request(payload: dict[str, Any], description: str) -> tuple[dict[str, Any], str]:
    """The request's payload with its deadline, and its message: the same object as JSON text.

    The SDK's ``Event.payload`` parses an APPROVAL_REQUESTED's *message* as JSON (its stream
    does not carry payloads), so that is where an SDK user finds the ``approval_id``.
    """
    expires = utcnow() + timedelta(seconds=float(payload["timeout_s"]))
    full = {**payload, "description": description, "expires_at": expires.isoformat().replace("+00:00", "Z")}
    return full, dumps(full).decode()
