"""faust-streaming 0.15.3's commit bookkeeping, and why its known bugs cannot reach the processor.

- faust-streaming issue 606: ``Consumer._new_offset`` commits past an unacknowledged record at the
  head of a partition (no commit yet, or the very record at the committed offset). Shown below on
  faust's own code. It needs an unacknowledged record *before* acknowledged ones; the processor
  acknowledges the raw records of a partition strictly in the order it read them (one batch after
  another, each batch in read order), so there is never a gap at the head: see
  ``test_the_pipeline_acknowledges_in_read_order``.
- faust-streaming issue 316: ``_commit_offsets`` records the offsets as committed even when the
  commit failed. It advances only over acknowledged records, so the next successful commit (or a
  replay from the older committed offset after a crash) loses nothing: at-least-once holds, and
  replays are dropped by event id.
- ``Stream.take()`` acknowledges a whole buffer in a ``finally`` even when processing it failed; the
  processor never uses ``take()`` (it reads ``stream.noack().events()`` and acknowledges itself).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from agentwire.processor.pipeline import Changelog, Pipeline
from agentwire.processor.sequencer import Limits, Sequencer
from agentwire.schema import RawEvent, encode

TP0 = TP("raw", 0)


def bookkeeping(committed: int | None, acked: list[int]) -> Any:
    """The attributes ``Consumer._new_offset`` reads, as a real Consumer holds them."""
    from intervaltree import IntervalTree

    state = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set),
                            _gap=defaultdict(IntervalTree), _committed_offset=defaultdict(lambda: None))
    state._committed_offset[TP0] = committed
    state._acked[TP0] = list(acked)
    state._acked_index[TP0] = set(acked)
    return state


def test_upstream_606_commits_past_an_unacknowledged_head_record() -> None:
    # Offset 0 was read but never acknowledged; 1 and 2 were. No commit yet: faust commits 3.
    assert Consumer._new_offset(bookkeeping(None, [1, 2]), TP0) == 3  # type: ignore[arg-type]
    # Committed offset 31 means "31 is the next record"; 31 is unacknowledged, 32 and 33 are: faust commits 34.
    assert Consumer._new_offset(bookkeeping(31, [32, 33]), TP0) == 34  # type: ignore[arg-type]
    # Without a gap at the head the bookkeeping is right.
    assert Consumer._new_offset(bookkeeping(31, [31, 32, 33]), TP0) == 34  # type: ignore[arg-type]


class Delivered:
    offset = 0


class Producer:
    def create_batch(self) -> Any:
        return SimpleNamespace(append=lambda **_: True)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        # deliveries land in a scrambled order: a later batch's may complete first
        asyncio.get_running_loop().call_later(0.001 * (partition % 3), future.set_result, Delivered())
        return future

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, headers: Any = None) -> asyncio.Future[Any]:
        return await self.send_batch(None, topic, partition=partition or 0)


class Ports:
    topic_events = topic_state = topic_control = topic_dlq = "t"

    def __init__(self) -> None:
        self.acked: list[int] = []

    def load_row(self, workflow_id: str) -> None:
        return None

    def load_task(self, workflow_id: str) -> None:
        return None

    def row_records(self, snapshots: dict[str, Any]) -> list[Changelog]:
        return [Changelog("rows", {0: [(b"k", b"v")]} if snapshots else {})]

    def task_records(self, tasks: list[Any]) -> Changelog:
        return Changelog("tasks", {})

    def expire_records(self, workflow_ids: list[str]) -> list[Changelog]:
        return []

    def written(self, changelog: Changelog, last_offsets: dict[int, int]) -> None:
        pass

    def dead_letter(self, record: Any, reason: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return b"", b"", [("source_topic", b"raw")]

    async def ack(self, records: list[Any]) -> None:
        await asyncio.sleep(0.001 * (records[0] % 2))  # acks of a batch take a while, unevenly
        self.acked.extend(records)


async def test_the_pipeline_acknowledges_in_read_order() -> None:
    ports = Ports()
    pipeline = Pipeline(Sequencer(Limits(100_000, (50, 80, 100), 120.0)), ports, 12, max_batch=7)
    pipeline.producer = Producer()  # type: ignore[assignment]
    shipping = asyncio.create_task(pipeline.run())
    for offset in range(300):
        workflow_id = f"task-{offset % 17}"
        value = b"\x00poison" if offset % 41 == 0 else encode(
            RawEvent(event_id=f"{workflow_id}:{offset}", workflow_id=workflow_id, type="LLM_PARTIAL"))
        pipeline.add(offset, workflow_id.encode(), value)
        if pipeline.full:
            await pipeline.room()
        if offset % 5 == 0:
            pipeline.ready()
            await asyncio.sleep(0)
    await pipeline.drain()
    shipping.cancel()
    assert ports.acked == list(range(300))


async def test_a_row_is_written_only_after_the_states_and_commands_it_caused() -> None:
    """A row that lands first would absorb a replay, which then could not publish them again."""
    from agentwire.schema import TaskSubmitted

    sent: list[str] = []

    class Recording(Producer):
        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
            sent.append(topic)
            return await super().send_batch(batch, topic, partition=partition)

    class WithTasks(Ports):
        topic_state = "state"
        topic_control = "control"

        def load_task(self, workflow_id: str) -> Any:
            return TaskSubmitted(workflow_id=workflow_id, tenant="t", query="q", session_id="s",
                                 context={"token_budget": 10})

    ports = WithTasks()
    pipeline = Pipeline(Sequencer(Limits(100_000, (50, 80, 100), 120.0)), ports, 12)
    pipeline.producer = Recording()  # type: ignore[assignment]
    shipping = asyncio.create_task(pipeline.run())
    usage = {"tokens_used": 50, "input_tokens": 25, "output_tokens": 25}
    task = ports.load_task("task-o")  # a budget of 10 tokens: the LLM_OUTPUT exhausts it
    for n, (kind, payload) in enumerate([("WORKFLOW_STARTED", None), ("LLM_OUTPUT", usage)], start=1):
        pipeline.add(n, b"task-o", encode(RawEvent(event_id=f"task-o:{n}", workflow_id="task-o", type=kind,
                                                   payload=payload, task=task if n == 1 else None)))
        pipeline.ready()
    await pipeline.drain()
    shipping.cancel()
    assert "state" in sent and "control" in sent and "rows" in sent  # the budget ran out: a CancelTask
    assert max(sent.index("state"), sent.index("control")) < sent.index("rows")
