"""An event's public fields → SSE frame and WebSocket message, with the renames of CONTRACT.md.

``fields`` is the event's public JSON object without ``stream_id`` (see delivery.py).
"""

from __future__ import annotations

from typing import Any

from agentwire.schema import dumps

CONTROL_NAMES = {
    "WORKFLOW_PAUSING": "workflow.pausing",
    "WORKFLOW_PAUSED": "workflow.paused",
    "WORKFLOW_RESUMED": "workflow.resumed",
    "WORKFLOW_CANCELLING": "workflow.cancelling",
    "WORKFLOW_CANCELLED": "workflow.cancelled",
}
KEEPALIVE = b": keepalive\n\n"  # an SSE comment: clients ignore it, proxies see the connection used
_RENAMED = frozenset({"STREAM_END", "LLM_PARTIAL", "LLM_OUTPUT", "ERROR_OCCURRED", *CONTROL_NAMES})


def sse_frame(fields: dict[str, Any], stream_id: str) -> bytes:
    """One SSE frame: ``id:``, ``event:``, a single ``data:`` line, a blank line."""
    kind = fields["type"]
    if kind in _RENAMED:
        name, data = sse_name_and_data(fields, stream_id)
        body = data if isinstance(data, bytes) else dumps(data)
    else:  # the common case: the event JSON under its own type
        name, body = kind, ws_message(fields, stream_id)
    return b"id: " + stream_id.encode() + b"\nevent: " + name.encode() + b"\ndata: " + body + b"\n\n"


def sse_name_and_data(fields: dict[str, Any], stream_id: str) -> tuple[str, dict[str, Any] | bytes]:
    kind = fields["type"]
    if kind == "STREAM_END":
        return "done", b"[DONE]"
    message = fields.get("message") or ""
    if kind == "LLM_PARTIAL":  # the most frequent event: one dict, no merging
        return "thread.message.delta", {
            "delta": message, "message": message, "workflow_id": fields["workflow_id"],
            "agent_id": fields.get("agent_id"), "seq": fields["seq"], "stream_id": stream_id,
            "timestamp": fields["timestamp"],
        }
    base = {
        "workflow_id": fields["workflow_id"],
        "agent_id": fields.get("agent_id"),
        "seq": fields["seq"],
        "stream_id": stream_id,
        "timestamp": fields["timestamp"],
    }
    if kind == "LLM_OUTPUT":
        return "thread.message.completed", {
            "response": message,
            "message": message,
            "metadata": fields.get("payload") or {},
            **base,
        }
    if kind in CONTROL_NAMES:
        data: dict[str, Any] = {**base, "message": message}
        payload = fields.get("payload") or {}
        if kind in ("WORKFLOW_PAUSED", "WORKFLOW_CANCELLED"):
            data["checkpoint"] = payload.get("checkpoint", "")
        if kind == "WORKFLOW_CANCELLED":
            data["was_paused"] = bool(payload.get("was_paused", False))
        return CONTROL_NAMES[kind], data
    name = "error" if kind == "ERROR_OCCURRED" else kind
    return name, {**fields, "stream_id": stream_id}


def not_found_frame(workflow_id: str) -> bytes:
    return _error_frame(workflow_id, "Workflow not found")


def events_gone_frame(workflow_id: str) -> bytes:
    """A finished workflow whose events are no longer in Kafka (expired, or never written)."""
    return _error_frame(workflow_id, "Workflow events expired")


def _error_frame(workflow_id: str, message: str) -> bytes:
    data = {"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": message}
    return b"event: ERROR_OCCURRED\ndata: " + dumps(data) + b"\n\n"


def ws_message(fields: dict[str, Any], stream_id: str) -> bytes:
    """The event JSON clients see: its public fields and ``stream_id`` last (as Event.public orders them)."""
    return dumps({**fields, "stream_id": stream_id})
