"""Where a stream starts: the resume point a client asked for, and the filter."""

from __future__ import annotations

import re
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


FROM_START = Resume()  # shared: most clients ask for no resume point

# What the OpenAPI document declares for Last-Event-ID and last_event_id (ASCII digits only:
# str.isdigit() would also take "²", which int() then refuses).
RESUME_REGEX = r"^[ \t]*([0-9]{1,18}|[0-9]{1,9}-[0-9]{1,18})?[ \t]*$"
_RESUME = re.compile(RESUME_REGEX)


def parse_resume(value: str | None) -> Resume:
    """Parse a Last-Event-ID: ``<partition>-<offset>``, a seq number, or empty."""
    if value is None:
        return FROM_START
    match = _RESUME.fullmatch(value)
    if match is None:
        raise ApiError(400, "malformed last_event_id: expected <partition>-<offset> or a sequence number")
    point = match.group(1)
    if not point:
        return FROM_START
    if "-" not in point:
        return Resume(after_seq=int(point))
    position = parse_position_id(point)
    assert position is not None  # the pattern admits only <digits>-<digits>
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
