"""TaskState → the JSON the API answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentwire.schema import Approval, TaskState


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def task_status(state: TaskState) -> dict[str, Any]:
    task = state.task
    return {
        "task_id": task.workflow_id,
        "workflow_id": task.workflow_id,
        "status": state.status.value,
        "progress": state.progress,
        "result": state.result,
        "error": state.error,
        "query": task.query,
        "session_id": task.session_id,
        "mode": task.mode,
        "context": task.context,
        "model_used": state.model_used,
        "provider": state.provider,
        "usage": state.usage.model_dump(),
        "metadata": state.metadata,
        "approvals": [approval(a) for a in state.approvals],
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(state.updated_at),
    }


def approval(item: Approval) -> dict[str, Any]:
    return {
        "approval_id": item.approval_id,
        "status": item.status,
        "message": item.message,
        "requested_at": rfc3339(item.requested_at),
        "expires_at": rfc3339(item.expires_at),
        "decided_at": rfc3339(item.decided_at),
        "decided_by": item.decided_by,
        "feedback": item.feedback,
    }


def task_summary(state: TaskState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task_id": state.workflow_id,
        "query": state.task.query,
        "status": state.status.value,
        "mode": state.task.mode,
        "created_at": rfc3339(state.task.created_at),
    }
    if state.completed_at is not None:
        out["completed_at"] = rfc3339(state.completed_at)
    pending = next((a.approval_id for a in state.approvals if a.status == "pending"), None)
    if pending is not None and not state.status.terminal:
        out["pending_approval"] = pending  # the dashboard offers Approve / Deny from the list
    if state.usage.total_tokens:
        # The SDK reads an object here (Shannon's TokenUsage), not a number.
        out["total_token_usage"] = {
            "total_tokens": state.usage.total_tokens,
            "prompt_tokens": state.usage.input_tokens,
            "completion_tokens": state.usage.output_tokens,
            "cost_usd": state.usage.estimated_cost,
        }
    return out


def control_state(state: TaskState) -> dict[str, Any]:
    control = state.control
    return {
        "is_paused": control.is_paused,
        "is_cancelled": control.is_cancelled,
        "paused_at": rfc3339(control.paused_at) or "",
        "pause_reason": control.pause_reason,
        "paused_by": control.paused_by,
        "cancel_reason": control.cancel_reason,
        "cancelled_by": control.cancelled_by,
    }
