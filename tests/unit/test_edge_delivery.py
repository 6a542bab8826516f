"""The edge's decode of event records: the fast path and the schema model agree, frame for frame."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agentwire.edge.delivery import Delivery, _canonical
from agentwire.edge.frames import CONTROL_NAMES
from agentwire.schema import Event, EventType, encode


@dataclass
class FakeRecord:
    value: bytes | None
    partition: int = 3
    offset: int = 41
    key: bytes = b"wf"


def events() -> list[Event]:
    out = []
    for kind in EventType:
        for extra in ({}, {"agent_id": "planner", "message": "hello \"quoted\" ✓"},
                      {"payload": {"checkpoint": "c1", "was_paused": True, "percent": 50.0}},
                      {"message": "", "payload": {}}):
            out.append(Event(workflow_id="task-1", type=kind.value, seq=7, event_id="task-1:7", **extra))
    out.append(Event(workflow_id="task-1", type="CUSTOM_TYPE", seq=1, event_id="e",
                     timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))  # no microseconds
    return out


@pytest.mark.parametrize("event", events(), ids=lambda e: f"{e.type}-{sorted(e.model_dump(exclude_none=True))}")
def test_the_fast_path_renders_what_the_model_renders(event: Event) -> None:
    record = FakeRecord(encode(event))
    assert _canonical(orjson.loads(record.value or b"")) is not None  # the codec's output takes the fast path
    fast = Delivery.of(record)
    model = Delivery.of_event(event, 3, 41)
    assert fast is not None
    assert (fast.sse, fast.ws, fast.seq, fast.type, fast.stream_id) == (model.sse, model.ws, event.seq, event.type,
                                                                        "3-41")
    assert fast.ts == event.timestamp.timestamp()
    assert orjson.loads(fast.ws) == orjson.loads(orjson.dumps(event.public("3-41"), option=orjson.OPT_UTC_Z))


def test_frames_follow_the_contract() -> None:
    def frame(kind: str, **extra: Any) -> tuple[str, Any]:
        event = Event(workflow_id="w", type=kind, seq=2, event_id="w:2", agent_id="a", **extra)
        delivery = Delivery.of(FakeRecord(encode(event)))
        assert delivery is not None
        lines = delivery.sse.decode().split("\n")
        assert lines[0] == "id: 3-41" and lines[-2:] == ["", ""]
        data = lines[2].removeprefix("data: ")
        return lines[1].removeprefix("event: "), data if data == "[DONE]" else orjson.loads(data)

    name, data = frame("LLM_PARTIAL", message="tok")
    assert name == "thread.message.delta" and data["delta"] == data["message"] == "tok" and "type" not in data
    name, data = frame("LLM_OUTPUT", message="all", payload={"tokens": 3})
    assert name == "thread.message.completed" and data["response"] == "all" and data["metadata"] == {"tokens": 3}
    assert frame("ERROR_OCCURRED", message="x")[1]["type"] == "ERROR_OCCURRED"
    assert frame("ERROR_OCCURRED")[0] == "error"
    assert frame("STREAM_END") == ("done", "[DONE]")
    for kind, name in CONTROL_NAMES.items():
        got, data = frame(kind, payload={"checkpoint": "c", "was_paused": True})
        assert got == name and "type" not in data and data["seq"] == 2
        assert ("checkpoint" in data) == (kind in ("WORKFLOW_PAUSED", "WORKFLOW_CANCELLED"))
        assert ("was_paused" in data) == (kind == "WORKFLOW_CANCELLED")
    name, data = frame("PROGRESS", payload={"percent": 50})
    assert name == "PROGRESS" and list(data) == ["workflow_id", "type", "agent_id", "payload", "timestamp", "seq",
                                                  "stream_id"]


@pytest.mark.parametrize("raw", [
    b'{"workflow_id":"w","type":"X","seq":"5","event_id":"e","timestamp":"2026-01-02T03:04:05Z"}',  # lax int
    b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"2026-01-02T03:04:05+00:00"}',
    b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"2026-01-02 03:04:05.000001Z"}',
    b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"2026-01-02T03:04:05.000000Z"}',
    b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"2026-01-02T03:04:05Z","agent_id":null,"x":1}',
])
def test_other_forms_the_model_accepts_render_as_the_model_does(raw: bytes) -> None:
    fast = Delivery.of(FakeRecord(raw))
    model = Delivery.of_event(Event.model_validate_json(raw), 3, 41)
    assert fast is not None and (fast.sse, fast.ws, fast.seq, fast.ts) == (model.sse, model.ws, model.seq, model.ts)


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"[]", b'{"type":"X"}',
                                 b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"yesterday"}',
                                 b'{"workflow_id":"w","type":"X","seq":5,"event_id":"e","timestamp":"2026-01-02T03:04:05Z",'
                                 b'"payload":[1]}'])
def test_a_record_that_is_no_event_is_skipped_with_a_reason(raw: bytes | None,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    assert Delivery.of(FakeRecord(raw)) is None
    assert "undecodable event at 3-41" in caplog.text
