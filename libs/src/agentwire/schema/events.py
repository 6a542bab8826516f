"""Event envelopes: what runners emit (RawEvent) and what clients see (Event)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentwire.schema.commands import TaskSubmitted


class EventType(StrEnum):
    """Every event type Shannon defines. Types stay open strings on the wire."""

    WORKFLOW_STARTED = "WORKFLOW_STARTED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    AGENT_STARTED = "AGENT_STARTED"
    AGENT_COMPLETED = "AGENT_COMPLETED"
    AGENT_FAILED = "AGENT_FAILED"
    AGENT_THINKING = "AGENT_THINKING"
    ERROR_OCCURRED = "ERROR_OCCURRED"
    ERROR_RECOVERY = "ERROR_RECOVERY"
    WARNING = "WARNING"
    STREAM_END = "STREAM_END"
    STATUS_UPDATE = "STATUS_UPDATE"
    PROGRESS = "PROGRESS"
    DATA_PROCESSING = "DATA_PROCESSING"
    WAITING = "WAITING"
    TEAM_STATUS = "TEAM_STATUS"
    LLM_PROMPT = "LLM_PROMPT"
    LLM_PARTIAL = "LLM_PARTIAL"
    LLM_OUTPUT = "LLM_OUTPUT"
    TOOL_INVOKED = "TOOL_INVOKED"
    TOOL_OBSERVATION = "TOOL_OBSERVATION"
    TOOL_ERROR = "TOOL_ERROR"
    SCREENSHOT_SAVED = "SCREENSHOT_SAVED"
    DELEGATION = "DELEGATION"
    ROLE_ASSIGNED = "ROLE_ASSIGNED"
    DEPENDENCY_SATISFIED = "DEPENDENCY_SATISFIED"
    TEAM_RECRUITED = "TEAM_RECRUITED"
    TEAM_RETIRED = "TEAM_RETIRED"
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGE_RECEIVED = "MESSAGE_RECEIVED"
    WORKSPACE_UPDATED = "WORKSPACE_UPDATED"
    TASKLIST_UPDATED = "TASKLIST_UPDATED"
    LEAD_DECISION = "LEAD_DECISION"
    LEAD_TOOL_CALL = "LEAD_TOOL_CALL"
    HITL_RESPONSE = "HITL_RESPONSE"
    BUDGET_THRESHOLD = "BUDGET_THRESHOLD"
    APPROVAL_REQUESTED = "APPROVAL_REQUESTED"
    APPROVAL_DECISION = "APPROVAL_DECISION"
    RESEARCH_PLAN_READY = "RESEARCH_PLAN_READY"
    REVIEW_USER_FEEDBACK = "REVIEW_USER_FEEDBACK"
    RESEARCH_PLAN_UPDATED = "RESEARCH_PLAN_UPDATED"
    RESEARCH_PLAN_APPROVED = "RESEARCH_PLAN_APPROVED"
    WORKFLOW_PAUSING = "WORKFLOW_PAUSING"
    WORKFLOW_PAUSED = "WORKFLOW_PAUSED"
    WORKFLOW_RESUMED = "WORKFLOW_RESUMED"
    WORKFLOW_CANCELLING = "WORKFLOW_CANCELLING"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"


TERMINAL_TYPES = frozenset(
    {EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_FAILED, EventType.WORKFLOW_CANCELLED}
)


class InternalType(StrEnum):
    """Types that travel on the raw topic only; the processor never publishes them."""

    TASK_ADMITTED = "_TASK_ADMITTED"
    TIMEOUT = "_TIMEOUT"


def utcnow() -> datetime:
    """The current time in UTC (all agentwire timestamps are UTC)."""
    return datetime.now(UTC)


class RawEvent(BaseModel):
    """What a runner (or the processor's own timers) writes to the raw topic.

    Unsequenced and at-least-once; ``event_id`` is deterministic per step so
    that retries and replays can be dropped by the processor.
    """

    model_config = ConfigDict(frozen=True)

    event_id: str
    workflow_id: str
    type: str
    agent_id: str | None = None
    message: str | None = None
    payload: dict[str, Any] | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    task: TaskSubmitted | None = None


class Event(BaseModel):
    """A sequenced event of the stream of record (the events topic)."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    type: str
    seq: int
    event_id: str
    agent_id: str | None = None
    message: str | None = None
    payload: dict[str, Any] | None = None
    timestamp: datetime = Field(default_factory=utcnow)

    def public(self, stream_id: str) -> dict[str, Any]:
        """The JSON a client sees (WS frames, /events, SSE data)."""
        out: dict[str, Any] = {"workflow_id": self.workflow_id, "type": self.type}
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        if self.message is not None:
            out["message"] = self.message
        if self.payload is not None:
            out["payload"] = self.payload
        out["timestamp"] = self.timestamp
        out["seq"] = self.seq
        out["stream_id"] = stream_id
        return out
