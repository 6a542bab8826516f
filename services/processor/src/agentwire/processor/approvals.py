"""The processor's part in human approvals: what a workflow asked for, who decided, when it expires.

The runner asks (APPROVAL_REQUESTED, with ``approval_id`` and ``expires_at``) and waits for an
ApprovalDecision command on the control topic. The processor keeps each approval's status in the
workflow's row, so that any ingest pod can answer 404/409 from the task state, and it owns the
deadline: when a pending approval expires it publishes the timeout's ApprovalDecision itself, so
the deadline survives a runner crash like any decision. Events the runner emits
(APPROVAL_DECISION) are the truth and overwrite what an admitted command said.

A pending approval holds off the silent-workflow timeout until it expires; a decision counts as
activity, so the runner gets a full silence window to act on it.

No I/O here; the sequencer calls these rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentwire.processor.row import Row
from agentwire.schema import Approval, ApprovalDecision, RawEvent
from agentwire.schema import EventType as T

MAX_APPROVALS = 16  # per workflow; one per approval checkpoint, so this bound is never reached in practice
TIMEOUT_DECIDER = "timeout"


def on_event(row: Row, raw: RawEvent) -> bool:
    """Apply a sequenced APPROVAL_REQUESTED or APPROVAL_DECISION; whether the task state changed."""
    payload = raw.payload or {}
    approval_id = payload.get("approval_id")
    if not isinstance(approval_id, str) or not approval_id:
        return False
    approval = _find(row, approval_id)
    if raw.type == T.APPROVAL_REQUESTED:
        if approval is not None:
            return False
        row.approvals.append(Approval(approval_id=approval_id, message=_description(payload, raw),
                                      requested_at=raw.timestamp, expires_at=_moment(payload.get("expires_at"))))
        del row.approvals[:-MAX_APPROVALS]
        return True
    if approval is None:
        approval = Approval(approval_id=approval_id)
        row.approvals.append(approval)
        del row.approvals[:-MAX_APPROVALS]
    approval.status = "approved" if payload.get("approved") is True else "denied"
    approval.decided_by = str(payload.get("decided_by") or approval.decided_by)
    approval.feedback = str(payload.get("feedback") or "")
    approval.decided_at = raw.timestamp
    return True


def on_command(row: Row, payload: dict[str, Any], now: float) -> bool:
    """Apply an admitted ApprovalDecision command: the first one for a pending approval wins."""
    approval = _find(row, str(payload.get("approval_id", "")))
    if approval is None or approval.status != "pending":
        return False
    approval.status = "approved" if payload.get("approved") is True else "denied"
    approval.decided_by = str(payload.get("requested_by", ""))
    approval.feedback = str(payload.get("feedback", ""))
    approval.decided_at = datetime.fromtimestamp(now, UTC)
    row.last_activity = now
    return True


def waiting(row: Row, now: float) -> bool:
    """Whether a pending approval still has time: the workflow is waiting for a human, not silent."""
    moment = datetime.fromtimestamp(now, UTC)
    return any(a.status == "pending" and a.expires_at is not None and a.expires_at > moment for a in row.approvals)


def expired(row: Row, now: float) -> bool:
    moment = datetime.fromtimestamp(now, UTC)
    return any(a.status == "pending" and a.expires_at is not None and a.expires_at <= moment for a in row.approvals)


def time_out(row: Row, now: float) -> list[ApprovalDecision]:
    """Deny every expired pending approval; the commands that tell the runner."""
    moment = datetime.fromtimestamp(now, UTC)
    commands: list[ApprovalDecision] = []
    for approval in row.approvals:
        if approval.status != "pending" or approval.expires_at is None or approval.expires_at > moment:
            continue
        approval.status, approval.decided_by, approval.decided_at = "denied", TIMEOUT_DECIDER, moment
        approval.feedback = "No decision before the approval expired"
        commands.append(ApprovalDecision(workflow_id=row.workflow_id, approval_id=approval.approval_id,
                                         approved=False, feedback=approval.feedback,
                                         reason="approval timed out", requested_by=TIMEOUT_DECIDER))
    if commands:
        row.last_activity = now
    return commands


def _description(payload: dict[str, Any], raw: RawEvent) -> str:
    described = payload.get("description")
    return described if isinstance(described, str) else raw.message or ""


def _find(row: Row, approval_id: str) -> Approval | None:
    return next((a for a in row.approvals if a.approval_id == approval_id), None)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
