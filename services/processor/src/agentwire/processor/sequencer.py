"""The processor's rules: (row, raw event) → the row advanced in place, plus outputs.

No I/O here: the faust app (app.py) feeds events in and ships what comes out.
Replaying the same raw event against the same row yields the same seq numbers,
which is what makes a crash between "output written" and "row saved" harmless:
the replayed outputs duplicate earlier ones exactly and readers drop them by seq.

Outputs are plain dicts shaped exactly like an encoded ``Event`` (same keys, same
order, ``None`` left out): the processor hands them to orjson as they are, one
encode per event, instead of building and dumping a pydantic model per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentwire.processor import approvals
from agentwire.processor.row import Row
from agentwire.schema import (
    TERMINAL_TYPES,
    ApprovalDecision,
    CancelTask,
    InternalType,
    RawEvent,
    TaskStatus,
    TaskSubmitted,
)
from agentwire.schema import EventType as T


@dataclass(frozen=True)
class Limits:
    default_token_budget: int
    thresholds: tuple[int, ...]
    timeout_s: float


Output = dict[str, Any]  # one sequenced event, shaped like an encoded Event


@dataclass
class Outcome:
    row: Row | None  # the advanced row, or None when the event changed nothing
    task: TaskSubmitted | None = None  # set when the task must be (re)stored
    events: list[Output] = field(default_factory=list)  # wire-shaped Event dicts
    state_changed: bool = False
    commands: list[CancelTask | ApprovalDecision] = field(default_factory=list)
    unknown: bool = False  # a runner's event for a workflow this processor has no row or task for


TERMINAL_STATUS = {
    T.WORKFLOW_COMPLETED: TaskStatus.COMPLETED,
    T.WORKFLOW_FAILED: TaskStatus.FAILED,
    T.WORKFLOW_CANCELLED: TaskStatus.CANCELLED,
}


class Sequencer:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def apply(self, row: Row | None, raw: RawEvent, now: float) -> Outcome:
        if raw.type == InternalType.TASK_ADMITTED:
            return self._admit(row, raw, now)
        if row is None:
            if raw.task is not None:  # a play's first event carries its task: it may precede the admission
                admitted = self._admit(None, raw, now)
                assert admitted.row is not None
                outcome = self._sequence(admitted.row, raw, now)
                outcome.task = raw.task
                return outcome
            if raw.type in (InternalType.TIMEOUT, "_CONTROL"):
                return Outcome(row=None)  # nothing to time out or control: absorbed
            # Never submitted, or past its lifetime (its row is gone): never a new workflow.
            return Outcome(row=None, unknown=True)
        if row.terminal:
            return Outcome(row=None)
        if raw.type == InternalType.TIMEOUT:
            return self._timeout(row, now)
        if raw.type == "_CONTROL":
            return self._control(row, raw, now)
        return self._sequence(row, raw, now)

    def _admit(self, row: Row | None, raw: RawEvent, now: float) -> Outcome:
        task = raw.task
        if row is not None or task is None:
            return Outcome(row=None, task=task)
        budget = _budget(task, self._limits.default_token_budget)
        fresh = Row(workflow_id=task.workflow_id, token_budget=budget, last_activity=now, updated_at=now)
        return Outcome(row=fresh, task=task)

    def _control(self, row: Row, raw: RawEvent, now: float) -> Outcome:
        payload = raw.payload or {}
        kind = payload.get("kind")
        control = row.control
        if kind == "pause":
            control.is_paused = True
            control.paused_at = raw.timestamp
            control.pause_reason = str(payload.get("reason", ""))
            control.paused_by = str(payload.get("requested_by", ""))
        elif kind == "resume":
            control.is_paused = False
        elif kind == "cancel":
            control.is_cancelled = True
            control.cancel_reason = str(payload.get("reason", ""))
            control.cancelled_by = str(payload.get("requested_by", ""))
        elif kind == "approval_decision":
            approvals.on_command(row, payload, now)
        row.updated_at = now
        return Outcome(row=row, state_changed=True)

    def due(self, row: Row, now: float) -> bool:
        """Whether the timer should send ``row`` an internal timeout record now."""
        if row.terminal:
            return False
        if approvals.expired(row, now):
            return True
        return self._silent(row, now)

    def _silent(self, row: Row, now: float) -> bool:
        return (row.status != TaskStatus.PAUSED and not approvals.waiting(row, now)
                and now - row.last_activity >= self._limits.timeout_s)

    def _timeout(self, row: Row, now: float) -> Outcome:
        decisions = approvals.time_out(row, now)
        if decisions:
            row.updated_at = now
            return Outcome(row=row, state_changed=True, commands=list(decisions))
        if not self._silent(row, now):
            return Outcome(row=None)
        message = f"Workflow timed out after {self._limits.timeout_s:g}s without progress"
        out: list[Output] = []
        self._emit(row, out, T.WORKFLOW_FAILED, f"{row.workflow_id}:timeout", "orchestrator", message,
                   {"error": message, "reason": "timeout"})
        self._finish(row, out, TaskStatus.TIMEOUT, now, error=message)
        return Outcome(row=row, events=out, state_changed=True)

    def _sequence(self, row: Row, raw: RawEvent, now: float) -> Outcome:
        if row.seen(raw.event_id) or raw.type == T.STREAM_END:
            return Outcome(row=None)
        row.remember(raw.event_id)
        row.last_activity = now
        out: list[Output] = []
        changed = False
        commands: list[CancelTask] = []
        self._emit(row, out, raw.type, raw.event_id, raw.agent_id, raw.message, raw.payload, raw.timestamp)
        payload = raw.payload or {}
        kind = raw.type
        if kind == T.WORKFLOW_STARTED and row.status == TaskStatus.QUEUED:
            row.status, changed = TaskStatus.RUNNING, True
        elif kind == T.PROGRESS and isinstance(payload.get("total"), int) and row.total_agents is None:
            row.total_agents = max(payload["total"], 0) or None
        elif kind == T.AGENT_STARTED:
            row.agents_started += 1
        elif kind == T.AGENT_COMPLETED:
            row.agents_completed += 1
            changed = self._progress(row, out, raw)
        elif kind == T.LLM_OUTPUT:
            changed = self._usage(row, out, raw, payload, commands, now)
        elif kind == T.WORKFLOW_PAUSED:
            row.status, changed = TaskStatus.PAUSED, True
            row.control.is_paused = True
            row.control.paused_at = row.control.paused_at or raw.timestamp
        elif kind in (T.APPROVAL_REQUESTED, T.APPROVAL_DECISION):
            changed = approvals.on_event(row, raw)
        elif kind == T.WORKFLOW_RESUMED:
            row.status, changed = TaskStatus.RUNNING, True
            row.control.is_paused = False
        elif kind in TERMINAL_TYPES:
            status = TERMINAL_STATUS[T(kind)]
            if status == TaskStatus.COMPLETED:
                row.result = str(payload.get("result") or raw.message or "")
                row.progress = 1.0
            elif status == TaskStatus.FAILED:
                row.error = str(payload.get("error") or raw.message or "Workflow failed")
            else:
                row.control.is_cancelled = True
                row.control.is_paused = False
            self._finish(row, out, status, now)
            changed = True
        row.updated_at = now
        return Outcome(row=row, events=out, state_changed=changed, commands=commands)

    def _progress(self, row: Row, out: list[Output], raw: RawEvent) -> bool:
        total = max(row.total_agents or row.agents_started, row.agents_completed, 1)
        percent = round(100.0 * row.agents_completed / total, 1)
        row.progress = min(row.agents_completed / total, 1.0)
        self._emit(row, out, T.PROGRESS, f"{raw.event_id}:progress", "orchestrator",
                   f"Progress: {percent:.1f}% ({row.agents_completed}/{total})",
                   {"completed": row.agents_completed, "total": total, "percent": percent})
        return True

    def _usage(self, row: Row, out: list[Output], raw: RawEvent, payload: dict[str, Any],
               commands: list[CancelTask], now: float) -> bool:
        tokens = _int(payload.get("tokens_used"))
        if tokens == 0:
            tokens = _int(payload.get("input_tokens")) + _int(payload.get("output_tokens"))
        usage = row.usage
        usage.total_tokens += tokens
        usage.input_tokens += _int(payload.get("input_tokens"))
        usage.output_tokens += _int(payload.get("output_tokens"))
        usage.estimated_cost = round(usage.estimated_cost + float(payload.get("cost_usd") or 0.0), 8)
        row.model_used = payload.get("model_used") or row.model_used
        row.provider = payload.get("provider") or row.provider
        budget = row.token_budget
        for threshold in self._limits.thresholds:
            if threshold in row.thresholds_crossed or usage.total_tokens * 100 < threshold * budget:
                continue
            row.thresholds_crossed.append(threshold)
            usage_percent = round(100.0 * usage.total_tokens / budget, 1)
            self._emit(row, out, T.BUDGET_THRESHOLD, f"{raw.event_id}:budget:{threshold}", "orchestrator",
                       f"Budget threshold: {threshold}%",
                       {"usage_percent": usage_percent, "threshold_percent": threshold,
                        "tokens_used": usage.total_tokens, "tokens_budget": budget, "budget_type": "task"})
        if 100 in row.thresholds_crossed and not row.terminal and usage.total_tokens >= budget:
            message = f"Token budget exceeded: {usage.total_tokens} of {budget} tokens used"
            self._emit(row, out, T.WORKFLOW_FAILED, f"{raw.event_id}:budget-stop", "orchestrator", message,
                       {"error": message, "reason": "budget"})
            self._finish(row, out, TaskStatus.FAILED, now, error=message)
            commands.append(CancelTask(workflow_id=raw.workflow_id, reason=message, requested_by="processor"))
        return True

    def _finish(self, row: Row, out: list[Output], status: TaskStatus, now: float, error: str | None = None) -> None:
        row.status = status
        if error is not None:
            row.error = error
        row.completed_at = now
        self._emit(row, out, T.STREAM_END, f"{row.workflow_id}:end", "orchestrator", "Stream ended", None)

    def _emit(self, row: Row, out: list[Output], kind: str, event_id: str, agent_id: str | None,
              message: str | None, payload: dict[str, Any] | None, timestamp: datetime | None = None) -> None:
        row.seq += 1
        event: Output = {"workflow_id": row.workflow_id, "type": kind, "seq": row.seq, "event_id": event_id}
        if agent_id is not None:
            event["agent_id"] = agent_id
        if message is not None:
            event["message"] = message
        if payload is not None:
            event["payload"] = payload
        event["timestamp"] = timestamp or datetime.now(UTC)
        out.append(event)


def _budget(task: TaskSubmitted, default: int) -> int:
    value = task.context.get("token_budget")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
