"""Where a stream starts: the resume point a client asked for, and the filter."""

from __future__ import annotations

from dataclasses import dataclass

from agentwire.kafka import parse_position_id
from agentwire.service.http import ApiError

SSE_ALIASES = {
    "thread.message.delta": "LLM_PARTIAL",
    "thread.message.completed": "LLM_OUTPUT",
    "error": "ERROR_OCCURRED",
    "done": "STREAM_END",
    "workflow.pausing": "WORKFLOW_PAUSING",
    "workflow.paused": "WORKFLOW_PAUSED",
    "workflow.resumed": "WORKFLOW_RESUMED",
    "workflow.cancelling": "WORKFLOW_CANCELLING",
    "workflow.cancelled": "WORKFLOW_CANCELLED",
}


@dataclass(frozen=True)
class Resume:
    """Resume strictly after ``position`` (partition, offset) or after seq ``after_seq``."""

    position: tuple[int, int] | None = None
    after_seq: int = 0


def parse_resume(value: str | None) -> Resume:
    """Parse a Last-Event-ID: ``<partition>-<offset>``, a seq number, or empty."""
    if value is None or value.strip() == "":
        return Resume()
    value = value.strip()
    if value.isdigit():
        return Resume(after_seq=int(value))
    position = parse_position_id(value)
    if position is None:
        raise ApiError(400, "malformed last_event_id: expected <partition>-<offset> or a sequence number")
    return Resume(position=position)


def parse_types(value: str | None) -> frozenset[str] | None:
    """The ``types`` filter as internal type names (SSE names accepted as aliases)."""
    if value is None or value.strip() == "":
        return None
    names = set()
    for part in value.split(","):
        name = part.strip()
        if name:
            names.add(SSE_ALIASES.get(name, name))
    return frozenset(names)
