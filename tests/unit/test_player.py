"""The player honours control commands, also while stalled (no Kafka involved)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.errors import LeaderNotAvailableError

from agentwire.runner.control import Command
from agentwire.runner.player import Player
from agentwire.schema import (
    ApprovalDecision,
    CancelTask,
    PauseTask,
    RawEvent,
    ResumeTask,
    SwarmMessage,
    TaskSubmitted,
)


def _task(mode: str = "standard", **context: object) -> TaskSubmitted:
    return TaskSubmitted(workflow_id="task-p", tenant="t", query="q", session_id="s", mode=mode,
                         context={"speed": 1000, **context})


async def test_cancel_reaches_a_stalled_play() -> None:
    emitted: list[RawEvent] = []
    first = asyncio.Event()

    async def emit(event: RawEvent) -> None:
        emitted.append(event)
        first.set()

    player = Player(_task(stall_at="prepare"), emit, default_speed=1.0)
    play = asyncio.create_task(player.play())
    await asyncio.wait_for(first.wait(), 5)
    done, _ = await asyncio.wait({play}, timeout=0.05)  # it must still be stalled, not finished
    assert not done
    player.control.apply(CancelTask(workflow_id="task-p", reason="stop"))
    await asyncio.wait_for(play, 5)
    assert [e.type for e in emitted][-2:] == ["WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED"]
    assert emitted[-1].payload == {"checkpoint": "prepare", "was_paused": False, "reason": "stop"}


async def test_event_ids_are_deterministic_across_replays() -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        ids: list[str] = []

        async def emit(event: RawEvent, ids: list[str] = ids) -> None:
            ids.append(event.event_id)

        await Player(_task(), emit, default_speed=1.0).play()
        runs.append(ids)
    assert runs[0] == runs[1]
    assert runs[0][0] == "task-p:1"


class Recorder:
    """Collects emitted events; ``seen(type)`` waits until one of that type was emitted."""

    def __init__(self) -> None:
        self.events: list[RawEvent] = []
        self._changed = asyncio.Event()

    async def emit(self, event: RawEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def seen(self, kind: str) -> RawEvent:
        async def wait() -> RawEvent:
            while True:
                found = [e for e in self.events if e.type == kind]
                if found:
                    return found[-1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), 5)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def _decision(approval_id: str, approved: bool, by: str = "alice", feedback: str = "") -> ApprovalDecision:
    return ApprovalDecision(workflow_id="task-p", approval_id=approval_id, approved=approved, feedback=feedback,
                            requested_by=by)


async def _waiting_for_approval(player: Player, recorder: Recorder) -> tuple[asyncio.Task[None], str]:
    play = asyncio.create_task(player.play())
    request = await recorder.seen("APPROVAL_REQUESTED")
    assert request.payload is not None and request.payload["expires_at"].endswith("Z")
    assert json.loads(str(request.message)) == request.payload  # what the SDK's Event.payload parses
    done, _ = await asyncio.wait({play}, timeout=0.05)
    assert not done, "the play must wait for a decision"
    return play, str(request.payload["approval_id"])


async def test_an_approved_plan_goes_on() -> None:
    recorder = Recorder()
    player = Player(_task(mode="simple", require_approval=True), recorder.emit, default_speed=1.0)
    play, approval_id = await _waiting_for_approval(player, recorder)
    player.control.apply(_decision(approval_id, True, feedback="go"))
    await asyncio.wait_for(play, 5)
    decision = next(e for e in recorder.events if e.type == "APPROVAL_DECISION")
    assert decision.payload == {"approval_id": approval_id, "approved": True, "feedback": "go", "decided_by": "alice"}
    assert recorder.types[-1] == "WORKFLOW_COMPLETED"


async def test_a_denied_or_expired_plan_fails_the_workflow() -> None:
    for by, reason in (("alice", "approval_denied"), ("timeout", "approval_timeout")):
        recorder = Recorder()
        player = Player(_task(mode="simple", require_approval=True), recorder.emit, default_speed=1.0)
        play, approval_id = await _waiting_for_approval(player, recorder)
        player.control.apply(_decision(approval_id, False, by=by, feedback="too costly"))
        player.control.apply(_decision(approval_id, True))  # later decisions are ignored
        await asyncio.wait_for(play, 5)
        assert recorder.types[-2:] == ["APPROVAL_DECISION", "WORKFLOW_FAILED"]
        assert recorder.events[-1].payload is not None and recorder.events[-1].payload["reason"] == reason
        assert "AGENT_STARTED" not in recorder.types


async def test_the_approval_wait_obeys_pause_and_cancel() -> None:
    recorder = Recorder()
    player = Player(_task(mode="simple", require_approval=True), recorder.emit, default_speed=1.0)
    play, approval_id = await _waiting_for_approval(player, recorder)
    player.control.apply(PauseTask(workflow_id="task-p"))
    await recorder.seen("WORKFLOW_PAUSED")
    player.control.apply(_decision(approval_id, True))
    done, _ = await asyncio.wait({play}, timeout=0.05)
    assert not done and "APPROVAL_DECISION" not in recorder.types  # paused: the decision waits too
    player.control.apply(ResumeTask(workflow_id="task-p"))
    await asyncio.wait_for(play, 5)
    types = recorder.types
    assert types.index("WORKFLOW_RESUMED") < types.index("APPROVAL_DECISION") and types[-1] == "WORKFLOW_COMPLETED"

    recorder = Recorder()
    player = Player(_task(mode="simple", require_approval=True), recorder.emit, default_speed=1.0)
    play, _ = await _waiting_for_approval(player, recorder)
    player.control.apply(CancelTask(workflow_id="task-p", reason="changed my mind"))
    await asyncio.wait_for(play, 5)
    assert recorder.types[-2:] == ["WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED"]
    assert recorder.events[-1].payload == {"checkpoint": "approval:decision", "was_paused": False,
                                           "reason": "changed my mind"}


async def test_a_replay_recalls_the_decision_and_emits_the_same_events() -> None:
    live = Recorder()
    player = Player(_task(mode="simple", require_approval=True), live.emit, default_speed=1.0)
    play, approval_id = await _waiting_for_approval(player, live)
    player.control.apply(_decision(approval_id, True))
    await asyncio.wait_for(play, 5)

    async def recall(task: TaskSubmitted) -> list[Command]:
        return [PauseTask(workflow_id="task-p"), _decision(approval_id, True)]  # a pause is not recalled

    replayed = Recorder()
    await asyncio.wait_for(Player(_task(mode="simple", require_approval=True), replayed.emit, default_speed=1.0,
                                  recall=recall).play(), 5)
    assert [(e.event_id, e.type) for e in replayed.events] == [(e.event_id, e.type) for e in live.events]


async def test_a_swarm_answers_client_messages_under_ids_of_their_own() -> None:
    plain = Recorder()
    await Player(_task(force_swarm=True), plain.emit, default_speed=1.0).play()

    recorder = Recorder()
    player = Player(_task(force_swarm=True), recorder.emit, default_speed=1.0)
    message = SwarmMessage(workflow_id="task-p", message_id="m1", message="Focus on Europe", requested_by="bob")
    player.control.apply(message)
    player.control.apply(message)  # delivered twice (a replay's recall and the live consumer): answered once
    await asyncio.wait_for(player.play(), 5)
    answer = [e for e in recorder.events if e.event_id.startswith("task-p:msg-m1:")]
    assert [e.type for e in answer] == ["MESSAGE_RECEIVED", "LEAD_DECISION", "MESSAGE_SENT"]
    assert [e.event_id for e in answer] == ["task-p:msg-m1:1", "task-p:msg-m1:2", "task-p:msg-m1:3"]
    assert answer[0].message == "Focus on Europe" and answer[0].payload is not None
    assert answer[0].payload["from"] == "user" and answer[2].payload is not None
    assert answer[2].payload["in_reply_to"] == "m1"
    rest = [(e.event_id, e.type) for e in recorder.events if e not in answer]
    assert rest == [(e.event_id, e.type) for e in plain.events]  # the scenario's own ids do not move


async def test_a_replay_sends_what_the_failed_attempt_got_to_at_once_and_paces_only_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []
    paced: list[float] = []
    failing = [True]

    async def emit(event: RawEvent) -> None:
        if len(sent) == 6 and failing[0]:  # Kafka goes away after six events
            failing[0] = False
            raise LeaderNotAvailableError()
        sent.append(event.event_id)

    async def pace(self: Player, delay: float) -> None:
        paced.append(delay)

    monkeypatch.setattr(Player, "_pace", pace)
    first = Player(_task(), emit, default_speed=1.0)
    with pytest.raises(LeaderNotAvailableError):
        await first.play()
    paced_by_first = len(paced)
    await first.replay().play()

    assert sent[:6] == sent[6:12]  # the replay sent the same ids again, in the same order
    steps = len(sent) - 6
    assert len(paced) - paced_by_first == steps - 6  # and paced only the steps past the failure
