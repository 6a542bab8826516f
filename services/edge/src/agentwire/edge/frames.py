"""Event → SSE frame and WebSocket message, with the renames of CONTRACT.md."""

from __future__ import annotations

from typing import Any

from agentwire.schema import Event, dumps

CONTROL_NAMES = {
    "WORKFLOW_PAUSING": "workflow.pausing",
    "WORKFLOW_PAUSED": "workflow.paused",
    "WORKFLOW_RESUMED": "workflow.resumed",
    "WORKFLOW_CANCELLING": "workflow.cancelling",
    "WORKFLOW_CANCELLED": "workflow.cancelled",
}


def sse_frame(event: Event, stream_id: str) -> bytes:
    """One SSE frame: ``id:``, ``event:``, a single ``data:`` line, a blank line."""
    name, data = sse_name_and_data(event, stream_id)
    body = data if isinstance(data, bytes) else dumps(data)
    return b"id: " + stream_id.encode() + b"\nevent: " + name.encode() + b"\ndata: " + body + b"\n\n"


def sse_name_and_data(event: Event, stream_id: str) -> tuple[str, dict[str, Any] | bytes]:
    kind = event.type
    if kind == "STREAM_END":
        return "done", b"[DONE]"
    base = {
        "workflow_id": event.workflow_id,
        "agent_id": event.agent_id,
        "seq": event.seq,
        "stream_id": stream_id,
        "timestamp": event.timestamp,
    }
    if kind == "LLM_PARTIAL":
        return "thread.message.delta", {"delta": event.message or "", "message": event.message or "", **base}
    if kind == "LLM_OUTPUT":
        return "thread.message.completed", {
            "response": event.message or "",
            "message": event.message or "",
            "metadata": event.payload or {},
            **base,
        }
    if kind in CONTROL_NAMES:
        data: dict[str, Any] = {**base, "message": event.message or ""}
        payload = event.payload or {}
        if kind in ("WORKFLOW_PAUSED", "WORKFLOW_CANCELLED"):
            data["checkpoint"] = payload.get("checkpoint", "")
        if kind == "WORKFLOW_CANCELLED":
            data["was_paused"] = bool(payload.get("was_paused", False))
        return CONTROL_NAMES[kind], data
    name = "error" if kind == "ERROR_OCCURRED" else kind
    return name, event.public(stream_id)


def not_found_frame(workflow_id: str) -> bytes:
    return _error_frame(workflow_id, "Workflow not found")


def events_gone_frame(workflow_id: str) -> bytes:
    """A finished workflow whose events are no longer in Kafka (expired, or never written)."""
    return _error_frame(workflow_id, "Workflow events expired")


def _error_frame(workflow_id: str, message: str) -> bytes:
    data = {"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": message}
    return b"event: ERROR_OCCURRED\ndata: " + dumps(data) + b"\n\n"


def ws_message(event: Event, stream_id: str) -> bytes:
    return dumps(event.public(stream_id))
