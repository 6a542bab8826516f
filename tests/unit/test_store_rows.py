"""The store's pure parts: reading a task-state record's indexed fields, and cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentwire.schema import DecodeError, TaskState, TaskStatus, encode
from agentwire.schema.commands import TaskSubmitted
from agentwire.store.queries import InvalidCursor, _decode_cursor, _encode_cursor
from agentwire.store.rows import task_row


def _state(status: TaskStatus, *, ended: bool) -> TaskState:
    created = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    task = TaskSubmitted(workflow_id="task-1", tenant="acme", query="q", session_id="s-1", created_at=created)
    return TaskState(task=task, status=status, updated_at=created + timedelta(seconds=5),
                     completed_at=created + timedelta(seconds=4) if ended else None)


def test_a_row_has_the_indexed_fields_and_the_record_whole() -> None:
    record = encode(_state(TaskStatus.COMPLETED, ended=True))
    row = task_row(b"task-1", record)
    assert (row.workflow_id, row.tenant, row.session_id) == ("task-1", "acme", "s-1")
    assert row.status == "TASK_STATUS_COMPLETED"
    assert row.active_at == row.completed_at  # an ended task's lifetime counts from its end
    assert row.state == record


def test_a_task_that_has_not_ended_counts_its_lifetime_from_its_last_update() -> None:
    row = task_row(b"task-1", encode(_state(TaskStatus.RUNNING, ended=False)))
    assert row.active_at == row.updated_at


@pytest.mark.parametrize("value", [b"not json", b"{}", b'{"task": {"workflow_id": "task-1"}}', b"[]"])
def test_records_that_are_not_task_states_are_refused(value: bytes) -> None:
    with pytest.raises(DecodeError):
        task_row(b"task-1", value)


def test_a_record_under_another_key_is_refused() -> None:
    with pytest.raises(DecodeError):
        task_row(b"task-2", encode(_state(TaskStatus.QUEUED, ended=False)))


def test_a_row_keeps_the_usage_as_columns() -> None:
    state = _state(TaskStatus.COMPLETED, ended=True)
    state = state.model_copy(update={"usage": state.usage.model_copy(update={"total_tokens": 42,
                                                                             "estimated_cost": 0.25})})
    row = task_row(b"task-1", encode(state))
    assert (row.tokens, row.cost) == (42, 0.25)


def test_a_nul_in_a_text_column_is_refused_not_left_to_fail_the_database() -> None:
    state = _state(TaskStatus.QUEUED, ended=False)
    bad = state.model_copy(update={"task": state.task.model_copy(update={"session_id": "s\x001"})})
    with pytest.raises(DecodeError):
        task_row(b"task-1", encode(bad))
    with_nul_query = state.model_copy(update={"task": state.task.model_copy(update={"query": "a\x00b"})})
    assert task_row(b"task-1", encode(with_nul_query)).session_id == "s-1"  # the state column is bytes: fine


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    moment = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    assert _decode_cursor(_encode_cursor(moment, "task-9")) == (moment, "task-9")
    for bad in ["", "abc", "eyJ4IjogMX0", "W10"]:
        with pytest.raises(InvalidCursor):
            _decode_cursor(bad)
