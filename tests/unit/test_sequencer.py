"""The processor's pure rules (Sequencer): order, dedupe, derived events, budget, timeout, control."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentwire.processor.row import Row
from agentwire.processor.sequencer import Limits, Outcome, Sequencer
from agentwire.schema import (
    ApprovalDecision,
    Event,
    InternalType,
    RawEvent,
    TaskStatus,
    TaskSubmitted,
    dumps,
    encode,
)

WF = "task-seq"
NOW = 1_000_000.0


class Harness:
    """Feeds raw events to a Sequencer the way the faust app does, keeping the row."""

    def __init__(self, budget: int | None = None, timeout_s: float = 120.0) -> None:
        self.sequencer = Sequencer(Limits(100_000, (50, 80, 100), timeout_s))
        self.row: Row | None = None
        self.events: list[Event] = []
        self.commands: list[Any] = []
        self.n = 0
        context = {"token_budget": budget} if budget else {}
        task = TaskSubmitted(workflow_id=WF, tenant="t", query="q", session_id="s", context=context)
        self.apply(RawEvent(event_id=f"{WF}:admitted", workflow_id=WF, type=InternalType.TASK_ADMITTED, task=task))

    def apply(self, raw: RawEvent, now: float = NOW) -> Outcome:
        outcome = self.sequencer.apply(self.row.model_copy(deep=True) if self.row else None, raw, now)
        if outcome.row is not None:
            self.row = outcome.row
        for output in outcome.events:  # the wire shape: the same bytes an Event model would encode to
            event = Event.model_validate(output)
            assert dumps(output) == encode(event)
            self.events.append(event)
        self.commands.extend(outcome.commands)
        return outcome

    def emit(self, kind: str, payload: dict[str, Any] | None = None, now: float = NOW, **kw: Any) -> Outcome:
        self.n += 1
        return self.apply(RawEvent(event_id=f"{WF}:{self.n}", workflow_id=WF, type=kind, payload=payload, **kw), now)

    def control(self, kind: str, offset: int) -> Outcome:
        return self.apply(RawEvent(event_id=f"{WF}:control:{offset}", workflow_id=WF, type="_CONTROL",
                                   payload={"kind": kind, "workflow_id": WF, "reason": "r", "requested_by": "u"}))

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def llm(tokens: int) -> dict[str, Any]:
    return {"tokens_used": tokens, "input_tokens": tokens // 2, "output_tokens": tokens - tokens // 2,
            "cost_usd": 0.001, "model_used": "m", "provider": "p"}


def run_standard(h: Harness, agents: int = 3) -> None:
    h.emit("WORKFLOW_STARTED")
    h.emit("PROGRESS", {"completed": 0, "total": agents, "percent": 0})
    for _ in range(agents):
        h.emit("AGENT_STARTED")
        h.emit("LLM_OUTPUT", llm(100))
        h.emit("AGENT_COMPLETED")
    h.emit("WORKFLOW_COMPLETED", {"result": "done"})


def test_seq_is_contiguous_and_stream_end_is_last() -> None:
    h = Harness()
    run_standard(h)
    assert [e.seq for e in h.events] == list(range(1, len(h.events) + 1))
    assert h.types[-2:] == ["WORKFLOW_COMPLETED", "STREAM_END"]
    assert h.row is not None and h.row.status == TaskStatus.COMPLETED and h.row.progress == 1.0
    assert h.row.result == "done" and h.row.usage.total_tokens == 300


def test_progress_follows_every_agent_completed() -> None:
    h = Harness()
    run_standard(h)
    derived = [e.payload for e in h.events if e.type == "PROGRESS"][1:]
    assert derived == [{"completed": 1, "total": 3, "percent": 33.3}, {"completed": 2, "total": 3, "percent": 66.7},
                       {"completed": 3, "total": 3, "percent": 100.0}]
    for i, e in enumerate(h.events):
        if e.type == "AGENT_COMPLETED":
            assert h.events[i + 1].type == "PROGRESS"


def test_replayed_events_are_dropped() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    h.emit("AGENT_STARTED")
    before = list(h.events)
    # a new runner replays the same task: the same event ids again
    for n in (1, 2):
        out = h.apply(RawEvent(event_id=f"{WF}:{n}", workflow_id=WF, type="AGENT_STARTED"))
        assert out.row is None and not out.events
    assert h.events == before
    h.emit("AGENT_COMPLETED")
    assert [e.seq for e in h.events] == [1, 2, 3, 4]  # AGENT_COMPLETED + PROGRESS


def test_a_second_admission_changes_nothing() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    task = TaskSubmitted(workflow_id=WF, tenant="t", query="q", session_id="s")
    out = h.apply(RawEvent(event_id=f"{WF}:admitted", workflow_id=WF, type=InternalType.TASK_ADMITTED, task=task))
    assert out.row is None and not out.events


def test_budget_thresholds_once_each_then_fail_and_cancel() -> None:
    h = Harness(budget=1000)
    h.emit("WORKFLOW_STARTED")
    h.emit("LLM_OUTPUT", llm(500))  # 50 %
    h.emit("LLM_OUTPUT", llm(100))  # 60 %: nothing new
    h.emit("LLM_OUTPUT", llm(250))  # 85 %: 80
    budget = [e.payload for e in h.events if e.type == "BUDGET_THRESHOLD"]
    assert budget == [
        {"usage_percent": 50.0, "threshold_percent": 50, "tokens_used": 500, "tokens_budget": 1000,
         "budget_type": "task"},
        {"usage_percent": 85.0, "threshold_percent": 80, "tokens_used": 850, "tokens_budget": 1000,
         "budget_type": "task"},
    ]
    assert not h.commands
    h.emit("LLM_OUTPUT", llm(200))  # 105 %
    assert [e.payload["threshold_percent"] for e in h.events if e.type == "BUDGET_THRESHOLD" and e.payload] == [
        50, 80, 100]
    assert h.types[-3:] == ["BUDGET_THRESHOLD", "WORKFLOW_FAILED", "STREAM_END"]
    assert h.row is not None and h.row.status == TaskStatus.FAILED and "budget" in str(h.row.error).lower()
    assert len(h.commands) == 1 and h.commands[0].kind == "cancel" and h.commands[0].workflow_id == WF
    # the runner's later events (it has not seen the cancel yet) are dropped
    count = len(h.events)
    h.emit("LLM_OUTPUT", llm(10))
    h.emit("WORKFLOW_COMPLETED")
    assert len(h.events) == count and h.types[-1] == "STREAM_END"


def test_one_jump_crosses_all_thresholds_in_order() -> None:
    h = Harness(budget=100)
    h.emit("WORKFLOW_STARTED")
    h.emit("LLM_OUTPUT", llm(1000))
    assert h.types == ["WORKFLOW_STARTED", "LLM_OUTPUT", "BUDGET_THRESHOLD", "BUDGET_THRESHOLD", "BUDGET_THRESHOLD",
                       "WORKFLOW_FAILED", "STREAM_END"]
    assert [e.seq for e in h.events] == list(range(1, 8))


def test_timeout_fails_a_silent_workflow() -> None:
    h = Harness(timeout_s=3)
    h.emit("WORKFLOW_STARTED", now=NOW)
    early = h.apply(RawEvent(event_id=f"{WF}:timeout:1", workflow_id=WF, type=InternalType.TIMEOUT), now=NOW + 1)
    assert early.row is None and not early.events
    late = h.apply(RawEvent(event_id=f"{WF}:timeout:2", workflow_id=WF, type=InternalType.TIMEOUT), now=NOW + 4)
    assert [e["type"] for e in late.events] == ["WORKFLOW_FAILED", "STREAM_END"]
    assert "timed out" in str(late.events[0]["message"])
    assert h.row is not None and h.row.status == TaskStatus.TIMEOUT
    assert [e.seq for e in h.events] == [1, 2, 3]
    again = h.apply(RawEvent(event_id=f"{WF}:timeout:3", workflow_id=WF, type=InternalType.TIMEOUT), now=NOW + 9)
    assert again.row is None and not again.events


def test_a_paused_workflow_does_not_time_out() -> None:
    h = Harness(timeout_s=3)
    h.emit("WORKFLOW_STARTED")
    h.emit("WORKFLOW_PAUSING")
    h.emit("WORKFLOW_PAUSED", {"checkpoint": "x"})
    out = h.apply(RawEvent(event_id=f"{WF}:timeout:1", workflow_id=WF, type=InternalType.TIMEOUT), now=NOW + 60)
    assert not out.events and h.row is not None and h.row.status == TaskStatus.PAUSED


def test_control_flags_follow_commands_and_events() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    out = h.control("pause", 7)
    assert out.state_changed and not out.events
    assert h.row is not None and h.row.control.is_paused and h.row.control.pause_reason == "r"
    h.emit("WORKFLOW_PAUSING")
    h.emit("WORKFLOW_PAUSED", {"checkpoint": "c"})
    assert h.row.status == TaskStatus.PAUSED
    h.control("resume", 8)
    assert not h.row.control.is_paused
    h.emit("WORKFLOW_RESUMED")
    assert h.row.status == TaskStatus.RUNNING
    h.control("cancel", 9)
    assert h.row.control.is_cancelled and h.row.control.cancelled_by == "u"
    h.emit("WORKFLOW_CANCELLING")
    h.emit("WORKFLOW_CANCELLED", {"checkpoint": "c", "was_paused": False})
    assert h.row.status == TaskStatus.CANCELLED and not h.row.control.is_paused
    assert h.types[-2:] == ["WORKFLOW_CANCELLED", "STREAM_END"]
    assert [e.seq for e in h.events] == list(range(1, len(h.events) + 1))


def test_terminal_is_final() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    h.emit("WORKFLOW_FAILED", {"error": "boom"})
    assert h.row is not None and h.row.status == TaskStatus.FAILED and h.row.error == "boom"
    count = len(h.events)
    h.emit("AGENT_STARTED")
    h.emit("WORKFLOW_COMPLETED")
    h.control("cancel", 3)
    h.apply(RawEvent(event_id=f"{WF}:timeout:1", workflow_id=WF, type=InternalType.TIMEOUT), now=NOW + 999)
    assert len(h.events) == count and h.types[-1] == "STREAM_END"
    assert h.types.count("STREAM_END") == 1


def test_runner_stream_end_is_ignored() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    out = h.emit("STREAM_END")
    assert not out.events
    h.emit("WORKFLOW_COMPLETED")
    assert h.types.count("STREAM_END") == 1


def test_a_plays_first_event_may_precede_its_admission() -> None:
    sequencer = Sequencer(Limits(100, (50, 80, 100), 120.0))
    task = TaskSubmitted(workflow_id="w", tenant="t", query="q", session_id="s")
    out = sequencer.apply(None, RawEvent(event_id="w:1", workflow_id="w", type="WORKFLOW_STARTED", task=task), NOW)
    assert out.row is not None and [e["seq"] for e in out.events] == [1] and out.task == task


def test_an_unknown_workflow_never_becomes_a_new_one() -> None:
    """No row and no task: never submitted, or past its lifetime. Nothing is published or stored."""
    sequencer = Sequencer(Limits(100, (50, 80, 100), 120.0))
    event = sequencer.apply(None, RawEvent(event_id="w:7", workflow_id="w", type="AGENT_STARTED"), NOW)
    assert event.unknown and event.row is None and not event.events
    for raw in (RawEvent(event_id="w:timeout:1", workflow_id="w", type=InternalType.TIMEOUT),
                RawEvent(event_id="w:control:3", workflow_id="w", type="_CONTROL",
                         payload={"kind": "cancel", "workflow_id": "w"})):
        absorbed = sequencer.apply(None, raw, NOW)
        assert absorbed.row is None and not absorbed.events and not absorbed.unknown and not absorbed.state_changed


def _tick(h: Harness, now: float) -> Outcome:
    return h.apply(RawEvent(event_id=f"{WF}:timeout:{int(now)}", workflow_id=WF, type=InternalType.TIMEOUT), now)


def _request(h: Harness, approval_id: str = "approval-1", expires_in: float = 60.0) -> None:
    expires = datetime.fromtimestamp(NOW + expires_in, UTC).isoformat()
    payload = {"approval_id": approval_id, "expires_at": expires, "description": "Approve the plan?"}
    h.emit("APPROVAL_REQUESTED", payload, message='{"approval_id": "..."}')


def _decide(h: Harness, offset: int, approved: bool, now: float, approval_id: str = "approval-1") -> Outcome:
    payload = {"kind": "approval_decision", "workflow_id": WF, "approval_id": approval_id, "approved": approved,
               "feedback": "ok", "requested_by": "alice"}
    return h.apply(RawEvent(event_id=f"{WF}:control:{offset}", workflow_id=WF, type="_CONTROL", payload=payload),
                   now)


def test_an_approval_is_tracked_from_request_to_decision() -> None:
    h = Harness()
    h.emit("WORKFLOW_STARTED")
    _request(h)
    assert h.row is not None
    [approval] = h.row.approvals
    assert approval.status == "pending" and approval.message == "Approve the plan?"
    assert approval.expires_at == datetime.fromtimestamp(NOW + 60, UTC)
    # The first admitted decision wins (the runner applies the same one: the control topic's order).
    assert _decide(h, 7, True, NOW + 5).state_changed
    _decide(h, 8, False, NOW + 6)
    assert h.row.approvals[0].status == "approved" and h.row.approvals[0].decided_by == "alice"
    assert h.row.last_activity == NOW + 5
    # What the runner emits is the truth.
    h.emit("APPROVAL_DECISION", {"approval_id": "approval-1", "approved": True, "decided_by": "alice",
                                 "feedback": "ok"})
    assert h.row.approvals[0].status == "approved" and h.row.approvals[0].feedback == "ok"
    assert h.types.count("APPROVAL_DECISION") == 1


def test_a_pending_approval_holds_off_the_silence_timeout_until_it_expires() -> None:
    h = Harness(timeout_s=3)
    h.emit("WORKFLOW_STARTED")
    _request(h, expires_in=60)
    assert h.row is not None
    assert not h.sequencer.due(h.row, NOW + 30)  # silent for 30 s, but waiting for a human
    assert _tick(h, NOW + 30).row is None and "WORKFLOW_FAILED" not in h.types
    # Expired: the processor denies it itself, once, and gives the runner a fresh silence window.
    assert h.sequencer.due(h.row, NOW + 61)
    out = _tick(h, NOW + 61)
    [command] = out.commands
    assert isinstance(command, ApprovalDecision)
    assert (command.approval_id, command.approved, command.requested_by) == ("approval-1", False, "timeout")
    assert h.row.approvals[0].status == "denied" and h.row.approvals[0].decided_by == "timeout"
    assert not out.events and _tick(h, NOW + 62).commands == []
    assert not h.sequencer.due(h.row, NOW + 62)
    # A decision arriving after the timeout changes nothing; a runner that never reacts is timed out.
    _decide(h, 9, True, NOW + 62)
    assert h.row.approvals[0].status == "denied"
    assert h.sequencer.due(h.row, NOW + 65)
    _tick(h, NOW + 65)
    assert h.types[-2:] == ["WORKFLOW_FAILED", "STREAM_END"] and h.row.status == TaskStatus.TIMEOUT


def test_a_decision_counts_as_activity() -> None:
    h = Harness(timeout_s=3)
    h.emit("WORKFLOW_STARTED")
    _request(h, expires_in=600)
    _decide(h, 5, True, NOW + 100)  # decided long after the last event
    assert h.row is not None
    assert not h.sequencer.due(h.row, NOW + 101)
    assert h.sequencer.due(h.row, NOW + 104)
