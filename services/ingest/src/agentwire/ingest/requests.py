"""Request bodies of the task API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from agentwire.service.http import ID_PATTERN

# CONTRACT.md: ids in paths and workflow_id. A session id is one too: /api/v1/sessions/{session_id}
# must reach every session a task can name (and PostgreSQL text, where it is kept, holds no NUL).
ID = ID_PATTERN.pattern


class Mode(StrEnum):
    SIMPLE = "simple"
    STANDARD = "standard"
    COMPLEX = "complex"
    SUPERVISOR = "supervisor"


class ModelTier(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class SubmitTask(BaseModel):
    """Body of POST /api/v1/tasks and /api/v1/tasks/stream."""

    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=10_000)
    session_id: str | None = Field(None, max_length=128, pattern=ID)
    context: dict[str, Any] | None = None
    mode: Mode | None = None
    model_tier: ModelTier | None = None
    model_override: str | None = Field(None, max_length=200)
    provider_override: str | None = Field(None, max_length=200)


class ControlBody(BaseModel):
    """Optional body of cancel, pause and resume."""

    model_config = ConfigDict(extra="ignore")

    reason: str | None = Field(None, max_length=1000)


class ApprovalDecisionBody(BaseModel):
    """Body of POST /api/v1/approvals/decision (the SDK's ``approve``)."""

    model_config = ConfigDict(extra="ignore")

    approval_id: str = Field(min_length=1, max_length=128, pattern=ID)
    workflow_id: str = Field(min_length=1, max_length=128, pattern=ID)
    approved: StrictBool
    feedback: str | None = Field(None, max_length=4000)


class SwarmMessageBody(BaseModel):
    """Body of POST /api/v1/swarm/{workflow_id}/message (the SDK's ``send_swarm_message``)."""

    model_config = ConfigDict(extra="ignore")

    message: str = Field(min_length=1, max_length=10_000)
