"""The player honours control commands, also while stalled (no Kafka involved)."""

from __future__ import annotations

import asyncio

from agentwire.runner.player import Player
from agentwire.schema import CancelTask, RawEvent, TaskSubmitted


def _task(**context: object) -> TaskSubmitted:
    return TaskSubmitted(workflow_id="task-p", tenant="t", query="q", session_id="s",
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
