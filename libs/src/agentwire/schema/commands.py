"""Commands: the task a client submitted and the control commands that steer it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(UTC)


class TaskSubmitted(BaseModel):
    """A task accepted by ingest, on the tasks topic."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["task_submitted"] = "task_submitted"
    workflow_id: str
    tenant: str
    query: str
    session_id: str
    mode: str = "standard"
    context: dict[str, Any] = Field(default_factory=dict)
    model_tier: str | None = None
    model_override: str | None = None
    provider_override: str | None = None
    request_hash: str | None = None
    created_at: datetime = Field(default_factory=_now)


class _Control(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow_id: str
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime = Field(default_factory=_now)


class CancelTask(_Control):
    kind: Literal["cancel"] = "cancel"


class PauseTask(_Control):
    kind: Literal["pause"] = "pause"


class ResumeTask(_Control):
    kind: Literal["resume"] = "resume"


class ApprovalDecision(_Control):
    """A human's (or the approval timeout's) answer to an APPROVAL_REQUESTED of the workflow.

    The first decision for an ``approval_id`` in the control topic's order wins, for the
    runner and the processor alike; later ones are ignored.
    """

    kind: Literal["approval_decision"] = "approval_decision"
    approval_id: str
    approved: bool
    feedback: str = ""


class SwarmMessage(_Control):
    """A message from a client to a running swarm workflow (``send_swarm_message``)."""

    kind: Literal["swarm_message"] = "swarm_message"
    message_id: str
    message: str


ControlCommand = Annotated[
    CancelTask | PauseTask | ResumeTask | ApprovalDecision | SwarmMessage, Field(discriminator="kind")
]
