"""What the processor reads and writes besides its rows: raw records in, task states out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from agentwire.processor.row import Row
from agentwire.schema import RawEvent, TaskState, TaskStatus, TaskSubmitted, utcnow

TERMINAL_VALUES = frozenset(status.value for status in TaskStatus if status.terminal)


def decode_record(key: bytes | None, value: bytes | None) -> list[RawEvent]:
    """A raw record's events: one JSON object, or a frame (a JSON array) of one workflow's events.

    Raises ValueError (with a reason for the dead-letter topic) when any part is malformed;
    a frame is taken whole or not at all.
    """
    if value is None:
        raise ValueError("record has no value")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"cannot decode RawEvent: {exc}") from exc
    items: Iterable[Any] = data if isinstance(data, list) else (data,)
    try:
        raws = [RawEvent.model_validate(item) for item in items]
    except ValidationError as exc:
        raise ValueError(f"cannot decode RawEvent: {exc}") from exc
    if not raws:
        raise ValueError("empty frame")
    for raw in raws:
        if key != raw.workflow_id.encode():
            raise ValueError("record key does not match workflow_id")
    return raws


def state_of(task: TaskSubmitted, row: Row) -> TaskState:
    return TaskState(
        task=task,
        status=row.status,
        progress=row.progress,
        result=row.result,
        error=row.error,
        model_used=row.model_used,
        provider=row.provider,
        usage=row.usage,
        control=row.control,
        approvals=row.approvals,
        last_seq=row.seq,
        first_offset=row.first_offset,
        updated_at=_dt(row.updated_at) or utcnow(),
        completed_at=_dt(row.completed_at),
    )


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
