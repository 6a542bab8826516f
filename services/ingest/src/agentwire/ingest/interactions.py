"""Approval decisions and swarm messages: what the interactive routes call, free of HTTP.

Both become commands on the control topic, keyed by workflow like cancel and pause, so they
reach the runner that plays the task (and, after a crash, its successor, which reads them
back) and the processor, which records an approval's status in the task state.

Whether an approval is still open is read from the task state (the processor's view), which
any ingest pod shares. Two decisions sent at the same instant through two pods can both be
accepted; the first in the control topic's order is the one the runner and the processor
apply, and the stream's APPROVAL_DECISION says which. Within one pod, a decision just sent is
remembered for ``CLAIM_TTL_S`` so a double click answers 409 before the state catches up.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

from agentwire.ingest.tasks import TaskService
from agentwire.schema import ApprovalDecision, SwarmMessage, TaskState

CLAIM_TTL_S = 60.0  # by then the task state shows the decision on every pod
MAX_CLAIMS = 10_000


class InteractionError(Exception):
    """Base of this module's errors."""


class NotFound(InteractionError):
    """No such approval or workflow for this tenant (404)."""


class Conflict(InteractionError):
    """The request cannot apply in the workflow's current state (409)."""


class Interactions:
    def __init__(self, tasks: TaskService) -> None:
        self._tasks = tasks
        self._claims: OrderedDict[str, float] = OrderedDict()

    async def decide(self, state: TaskState, approval_id: str, *, approved: bool, feedback: str,
                     decided_by: str) -> ApprovalDecision:
        """Send the decision for a pending approval of ``state``'s workflow."""
        state, approval = await self._tasks.approval(state, approval_id)
        if approval is None:
            raise NotFound("Approval not found")
        if approval.status != "pending":
            raise Conflict("Approval already decided")
        if state.status.terminal:
            raise Conflict(f"Workflow already finished ({state.status.value})")
        key = f"{state.workflow_id}\x00{approval_id}"
        if not self._claim(key):
            raise Conflict("Approval already decided")
        decision = ApprovalDecision(workflow_id=state.workflow_id, approval_id=approval_id, approved=approved,
                                    feedback=feedback, requested_by=decided_by,
                                    reason="approved" if approved else "denied")
        try:
            await self._tasks.control(state, decision)
        except BaseException:
            self._claims.pop(key, None)  # not sent: the approval stays open
            raise
        return decision

    async def message(self, state: TaskState, text: str, *, sent_by: str) -> SwarmMessage:
        """Deliver a client message to a running swarm workflow."""
        if state.task.context.get("force_swarm") is not True:
            raise Conflict("Workflow is not a swarm")
        if state.status.terminal:
            raise Conflict(f"Workflow is not running ({state.status.value})")
        command = SwarmMessage(workflow_id=state.workflow_id, message_id=uuid.uuid4().hex[:16], message=text,
                               requested_by=sent_by)
        await self._tasks.control(state, command)
        return command

    def _claim(self, key: str) -> bool:
        """Remember a decision sent from this pod; False if one was sent within the TTL."""
        now = time.monotonic()
        while self._claims:
            oldest, stamp = next(iter(self._claims.items()))
            if now - stamp < CLAIM_TTL_S and len(self._claims) < MAX_CLAIMS:
                break
            self._claims.pop(oldest)
        if key in self._claims:
            return False
        self._claims[key] = now
        return True
