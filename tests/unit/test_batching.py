"""store/batching.py: concurrent calls share a round trip; a lone one goes at once."""

from __future__ import annotations

import asyncio

import pytest

from agentwire.store.batching import Batcher


async def settle() -> None:
    """Let every ready task run (the caller's, then the flusher's)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.gate.wait()
        if -1 in items:
            raise ValueError("boom")
        return [i * 10 for i in items]


async def test_calls_arriving_during_a_round_trip_share_the_next_one() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    first = asyncio.create_task(batcher.call(1))
    await settle()
    assert recorder.batches == [[1]]  # a lone call goes out at once
    rest = [asyncio.create_task(batcher.call(i)) for i in (2, 3, 4)]
    await settle()
    recorder.gate.set()
    assert await first == 10 and [await r for r in rest] == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_failed_batch_fails_its_calls_only_and_a_cancelled_caller_harms_nobody() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run)
    bad = asyncio.create_task(batcher.call(-1))
    await settle()
    later = [asyncio.create_task(batcher.call(i)) for i in (5, 6)]
    await settle()
    later[0].cancel()
    recorder.gate.set()
    with pytest.raises(ValueError, match="boom"):
        await bad
    assert await later[1] == 60
    with pytest.raises(asyncio.CancelledError):
        await later[0]
