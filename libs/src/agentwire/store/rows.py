"""A task-state record → the columns the store indexes it by.

Only the indexed fields are read (a full TaskState validation per record would
make rebuilding the index several times slower); the record's bytes are kept
whole and decoded when a query returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from agentwire.schema import DecodeError, TaskStatus

TERMINAL = frozenset(s.value for s in TaskStatus if s.terminal)


@dataclass(frozen=True, slots=True)
class TaskRow:
    workflow_id: str
    tenant: str
    session_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    state: bytes
    tokens: int = 0  # the task's usage, kept as columns: session totals sum them without parsing ``state``
    cost: float = 0.0

    @property
    def active_at(self) -> datetime:
        """When the task last did something: its lifetime counts from here."""
        if self.status in TERMINAL and self.completed_at is not None:
            return self.completed_at
        return self.updated_at


def task_row(key: bytes, value: bytes) -> TaskRow:
    """The row of one task-state record; DecodeError if it is not a TaskState of this key."""
    try:
        data = orjson.loads(value)
        task = data["task"]
        workflow_id = task["workflow_id"]
        if workflow_id.encode() != key:
            raise DecodeError(f"record key {key!r} is not its workflow id {workflow_id!r}")
        status = data.get("status", TaskStatus.QUEUED.value)
        if status not in TaskStatus._value2member_map_:
            raise DecodeError(f"unknown status {status!r}")
        completed = data.get("completed_at")
        usage = data.get("usage") or {}
        tenant, session_id = str(task["tenant"]), str(task["session_id"])
        if "\x00" in tenant or "\x00" in session_id:  # PostgreSQL text holds no NUL (ingest refuses them)
            raise DecodeError("a NUL in the tenant or session id")
        return TaskRow(
            workflow_id=workflow_id,
            tenant=tenant,
            session_id=session_id,
            status=status,
            created_at=_moment(task["created_at"]),
            updated_at=_moment(data["updated_at"]),
            completed_at=_moment(completed) if completed else None,
            state=value,
            tokens=int(usage.get("total_tokens") or 0),
            cost=float(usage.get("estimated_cost") or 0.0),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"not a task-state record: {exc!r}") from exc


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
