"""A task's timeline: its steps per agent, with start, end and duration, built from its events.

Agents are lanes: from AGENT_STARTED to AGENT_COMPLETED/AGENT_FAILED, or, for the orchestrator,
planner, lead and other coordinators that never "start", from their first to their last event.
Steps are spans within a lane:

    llm       LLM_PROMPT (or the first LLM_PARTIAL) → LLM_OUTPUT      tokens from the output's usage
    tool      TOOL_INVOKED → TOOL_OBSERVATION (ok) or TOOL_ERROR (error)
    approval  APPROVAL_REQUESTED → APPROVAL_DECISION                  approved or denied
    pause     WORKFLOW_PAUSED → WORKFLOW_RESUMED (or the end)

A span still open when the events end has no end: ``running`` while the task runs, else
``interrupted``. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentwire.ingest.render import rfc3339
from agentwire.schema import TERMINAL_TYPES, TaskState

OPENS = {"LLM_PROMPT": "llm", "LLM_PARTIAL": "llm", "TOOL_INVOKED": "tool", "APPROVAL_REQUESTED": "approval",
         "WORKFLOW_PAUSED": "pause"}
CLOSES = {"LLM_OUTPUT": "llm", "TOOL_OBSERVATION": "tool", "TOOL_ERROR": "tool", "APPROVAL_DECISION": "approval",
          "WORKFLOW_RESUMED": "pause", "WORKFLOW_CANCELLED": "pause"}


@dataclass
class Span:
    kind: str
    name: str
    started: datetime
    ended: datetime | None = None
    status: str = "running"
    detail: dict[str, Any] = field(default_factory=dict)

    def json(self, open_status: str) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, **_times(self.started, self.ended),
               "status": self.status if self.ended else open_status}
        out.update(self.detail)
        return out


@dataclass
class Lane:
    agent_id: str
    started: datetime
    ended: datetime | None = None
    last: datetime | None = None
    status: str = "running"
    explicit: bool = False  # an AGENT_STARTED opened it
    steps: list[Span] = field(default_factory=list)
    open: dict[str, Span] = field(default_factory=dict)


def timeline(state: TaskState, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The timeline of ``state``'s task from its events (as the history read returns them)."""
    lanes: dict[str, Lane] = {}
    first: datetime | None = None
    end: datetime | None = None
    for event in events:
        kind, moment = event["type"], event["timestamp"]
        first = first or moment
        if kind in TERMINAL_TYPES:
            end = moment
        agent = event.get("agent_id")
        if not agent:
            continue
        lane = lanes.get(agent)
        if lane is None:
            lane = lanes[agent] = Lane(agent, moment)
        lane.last = moment
        _apply(lane, kind, moment, event.get("payload") or {})
    open_status = "running" if not state.status.terminal else "interrupted"
    agents = [_lane_json(lane, open_status) for lane in sorted(lanes.values(), key=lambda la: la.started)]
    return {
        "task_id": state.workflow_id,
        "workflow_id": state.workflow_id,
        "status": state.status.value,
        **_times(first, end),
        "agents": agents,
        "total": len(events),
    }


def _apply(lane: Lane, kind: str, moment: datetime, payload: dict[str, Any]) -> None:
    if kind == "AGENT_STARTED":
        lane.started, lane.explicit = moment, True
    elif kind in ("AGENT_COMPLETED", "AGENT_FAILED"):
        lane.ended, lane.status = moment, "completed" if kind == "AGENT_COMPLETED" else "failed"
    elif kind in OPENS and OPENS[kind] not in lane.open:
        span_kind = OPENS[kind]
        name = str(payload.get("tool") or span_kind) if span_kind == "tool" else span_kind
        span = Span(span_kind, name, moment)
        lane.open[span_kind] = span
        lane.steps.append(span)
    elif kind in CLOSES and CLOSES[kind] in lane.open:
        span = lane.open.pop(CLOSES[kind])
        span.ended, span.status = moment, _outcome(kind, payload)
        if kind == "LLM_OUTPUT" and isinstance(payload.get("tokens_used"), int):
            span.detail["tokens"] = payload["tokens_used"]
        if kind == "APPROVAL_DECISION":
            span.detail["approval_id"] = payload.get("approval_id")


def _outcome(kind: str, payload: dict[str, Any]) -> str:
    if kind == "TOOL_ERROR":
        return "error"
    if kind == "APPROVAL_DECISION":
        return "approved" if payload.get("approved") is True else "denied"
    if kind == "WORKFLOW_CANCELLED":
        return "cancelled"
    return "ok"


def _lane_json(lane: Lane, open_status: str) -> dict[str, Any]:
    ended = lane.ended if lane.explicit else lane.last
    status = lane.status if lane.explicit else ("completed" if open_status == "interrupted" else "running")
    if lane.explicit and lane.ended is None:
        status = open_status
    return {"agent_id": lane.agent_id, **_times(lane.started, ended), "status": status,
            "steps": [span.json(open_status) for span in lane.steps]}


def _times(started: datetime | None, ended: datetime | None) -> dict[str, Any]:
    duration = round((ended - started).total_seconds() * 1000, 1) if started and ended else None
    return {"started_at": rfc3339(started), "ended_at": rfc3339(ended), "duration_ms": duration}
