"""TaskState: the latest snapshot of a task, kept on the compacted task-state topic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentwire.schema.commands import TaskSubmitted


class TaskStatus(StrEnum):
    QUEUED = "TASK_STATUS_QUEUED"
    RUNNING = "TASK_STATUS_RUNNING"
    PAUSED = "TASK_STATUS_PAUSED"
    COMPLETED = "TASK_STATUS_COMPLETED"
    FAILED = "TASK_STATUS_FAILED"
    CANCELLED = "TASK_STATUS_CANCELLED"
    TIMEOUT = "TASK_STATUS_TIMEOUT"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMEOUT})


class Usage(BaseModel):
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_cost: float = 0.0


class ControlState(BaseModel):
    is_paused: bool = False
    is_cancelled: bool = False
    paused_at: datetime | None = None
    pause_reason: str = ""
    paused_by: str = ""
    cancel_reason: str = ""
    cancelled_by: str = ""


ApprovalStatus = Literal["pending", "approved", "denied"]


class Approval(BaseModel):
    """One approval a workflow asked for, as the processor last saw it.

    ``decided_by`` is the key name of whoever decided, or ``timeout`` when nobody did in time.
    A workflow holds at most a handful (one per approval checkpoint), so the list is bounded.
    """

    approval_id: str
    status: ApprovalStatus = "pending"
    message: str = ""
    requested_at: datetime | None = None
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str = ""
    feedback: str = ""


class TaskState(BaseModel):
    """Everything the API reports about one task."""

    model_config = ConfigDict(frozen=True)

    task: TaskSubmitted
    status: TaskStatus = TaskStatus.QUEUED
    progress: float = 0.0
    result: str | None = None
    error: str | None = None
    model_used: str | None = None
    provider: str | None = None
    usage: Usage = Field(default_factory=Usage)
    control: ControlState = Field(default_factory=ControlState)
    metadata: dict[str, Any] = Field(default_factory=dict)
    approvals: list[Approval] = Field(default_factory=list)
    last_seq: int = 0
    first_offset: int | None = None
    updated_at: datetime
    completed_at: datetime | None = None

    @property
    def workflow_id(self) -> str:
        return self.task.workflow_id

    @property
    def tenant(self) -> str:
        return self.task.tenant
