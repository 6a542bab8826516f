"""Every message round-trips through the orjson codec unchanged."""

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import TypeAdapter

from agentwire.schema import (
    CancelTask,
    ControlCommand,
    DecodeError,
    Event,
    EventType,
    PauseTask,
    RawEvent,
    ResumeTask,
    TaskState,
    TaskStatus,
    TaskSubmitted,
    decode,
    decode_as,
    encode,
)

TASK = TaskSubmitted(workflow_id="task-1", tenant="acme", query="q", session_id="s", context={"speed": 2})


def test_every_contract_event_type_is_defined() -> None:
    assert len(EventType) == 47
    assert {"WORKFLOW_STARTED", "LLM_PARTIAL", "BUDGET_THRESHOLD", "WORKFLOW_CANCELLED", "STREAM_END"} <= set(EventType)


@pytest.mark.parametrize("kind", list(EventType))
def test_event_round_trip(kind: EventType) -> None:
    event = Event(workflow_id="task-1", type=kind, seq=3, event_id="task-1:3", agent_id="a", message="m",
                  payload={"n": 1, "nested": {"x": [1, 2]}}, timestamp=datetime(2026, 1, 2, 3, 4, 5, 6000, UTC))
    assert decode(Event, encode(event)) == event


@pytest.mark.parametrize("kind", list(EventType))
def test_raw_event_round_trip(kind: EventType) -> None:
    raw = RawEvent(event_id="task-1:1", workflow_id="task-1", type=kind, task=TASK)
    assert decode(RawEvent, encode(raw)) == raw


def test_timestamps_are_rfc3339_utc() -> None:
    event = Event(workflow_id="w", type="X", seq=1, event_id="w:1", timestamp=datetime(2026, 1, 2, tzinfo=UTC))
    assert orjson.loads(encode(event))["timestamp"] == "2026-01-02T00:00:00Z"


@pytest.mark.parametrize("command", [CancelTask(workflow_id="w", reason="r"), PauseTask(workflow_id="w"),
                                     ResumeTask(workflow_id="w")])
def test_control_commands_round_trip_through_the_union(command: object) -> None:
    adapter: TypeAdapter[object] = TypeAdapter(ControlCommand)
    assert decode_as(adapter, encode(command)) == command  # type: ignore[arg-type]


def test_task_state_round_trip() -> None:
    state = TaskState(task=TASK, status=TaskStatus.COMPLETED, result="done", updated_at=datetime.now(UTC))
    assert decode(TaskState, encode(state)) == state


@pytest.mark.parametrize("data", [None, b"", b"{", b"[]", b'{"workflow_id": 1}', b'{"type": "X"}'])
def test_malformed_records_raise_decode_error(data: bytes | None) -> None:
    with pytest.raises(DecodeError):
        decode(Event, data)
