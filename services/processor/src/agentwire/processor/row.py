"""The processor's per-workflow row, as stored in its changelog-backed table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentwire.schema import Approval, ControlState, TaskStatus, Usage

RECENT_IDS = 64


class Row(BaseModel):
    """Mutable per-workflow state; small, because it is written for every event."""

    workflow_id: str
    seq: int = 0
    id_marks: dict[str, int] = Field(default_factory=dict)
    recent_ids: list[str] = Field(default_factory=list)
    status: TaskStatus = TaskStatus.QUEUED
    agents_started: int = 0
    agents_completed: int = 0
    total_agents: int | None = None
    progress: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    token_budget: int = 0
    thresholds_crossed: list[int] = Field(default_factory=list)
    model_used: str | None = None
    provider: str | None = None
    result: str | None = None
    error: str | None = None
    control: ControlState = Field(default_factory=ControlState)
    approvals: list[Approval] = Field(default_factory=list)  # bounded: approvals.MAX_APPROVALS
    first_offset: int | None = None
    last_activity: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was sequenced before (runner retries and replays)."""
        prefix, _, number = event_id.rpartition(":")
        if prefix and number.isdigit():
            return int(number) <= self.id_marks.get(prefix, 0)
        return event_id in self.recent_ids

    def remember(self, event_id: str) -> None:
        prefix, _, number = event_id.rpartition(":")
        if prefix and number.isdigit():
            self.id_marks[prefix] = max(self.id_marks.get(prefix, 0), int(number))
            return
        self.recent_ids.append(event_id)
        del self.recent_ids[:-RECENT_IDS]

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
