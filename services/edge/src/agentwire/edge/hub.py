"""The live tail: one Kafka consumer per edge process, fanned out to subscribers.

The consumer is assigned only the partitions that current subscribers need. A new
partition starts at its end offset, fetched explicitly (never a lazy reset), so a
subscriber knows that everything from the moment it subscribed will reach it; its
session reads what came before from history. Each subscriber's queue is bounded:
past ``limit`` records it is marked overflowed and emptied, and its session goes
back to reading Kafka from its own position (Kafka is the buffer).

Once a session has caught up, it hands the subscription a direct writer
(``Subscription.direct``, see wire.py): from then on the tail writes each fetch's
events to that client itself, in the same pass that decoded them, and the
session's task sleeps until the writer stops (the stream ended, the client fell
behind or left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agentwire.edge.delivery import Delivery
from agentwire.edge.metrics import WriteTally
from agentwire.edge.recent import RecentCache
from agentwire.kafka import Record, make_consumer
from agentwire.kafka.metrics import counter, gauge
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)


# A direct writer takes a workflow's events of one fetch and answers whether to keep writing
# directly; when it answers False its session has recorded why (finished or overflowed).
DirectWriter = Callable[[list[Delivery]], bool]


class Subscription:
    __slots__ = ("direct", "gone", "limit", "overflowed", "partition", "queue", "wake", "workflow_id")

    def __init__(self, workflow_id: str, partition: int, limit: int) -> None:
        self.workflow_id = workflow_id
        self.partition = partition
        self.limit = limit
        self.queue: list[Delivery] = []
        self.overflowed = False
        self.gone = False  # a direct write found the client gone
        self.direct: DirectWriter | None = None
        self.wake = asyncio.Event()

    def offer(self, items: list[Delivery]) -> bool:
        """Hand over a workflow's events of one fetch; returns False when this offer overflowed."""
        if self.direct is not None:
            try:
                keep = self.direct(items)
            except ConnectionResetError:
                keep, self.gone = False, True
            if not keep:
                self.direct = None
                self.wake.set()
            return not self.overflowed
        if self.overflowed:
            return True
        if len(self.queue) + len(items) > self.limit:
            self.overflowed = True
            self.queue = []
            self.wake.set()
            return False
        self.queue.extend(items)
        self.wake.set()
        return True

    def take(self) -> list[Delivery]:
        items = self.queue
        self.queue = []
        self.wake.clear()
        return items

    def rejoin(self) -> None:
        """Start queueing again after an overflow (the session catches up from Kafka)."""
        self.queue = []
        self.overflowed = False
        self.direct = None
        self.wake.clear()


class LiveHub:
    def __init__(self, kafka: KafkaSettings, *, release_after_s: float = 5.0,
                 cache: RecentCache | None = None) -> None:
        self._kafka = kafka
        self._topic = kafka.topics.events
        self._consumer: AIOKafkaConsumer | None = None
        self._subs: dict[str, set[Subscription]] = {}
        self._per_partition: dict[int, int] = {}
        self._next: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._releasing: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._release_after_s = release_after_s
        self._task: asyncio.Task[None] | None = None
        self.cache = cache or RecentCache(max_bytes=0, max_events=0)
        self.written = WriteTally()  # direct writers add to it; handed to Prometheus once per fetch
        self.ready = False
        self._records = counter("agentwire_edge_live_records_total", "Records read by the live tail")
        self._overflows = counter("agentwire_edge_slow_client_catchups_total",
                                  "Clients switched to catching up from Kafka after filling their buffer")
        self._partitions = gauge("agentwire_edge_assigned_partitions", "Partitions the live tail is assigned")
        # counted when scraped, so the hot path pays nothing for it
        gauge("agentwire_edge_direct_clients", "Caught-up clients the live tail writes to directly").set_function(
            self.direct_clients)

    def direct_clients(self) -> int:
        return sum(sub.direct is not None for subs in self._subs.values() for sub in subs)

    async def start(self) -> None:
        # A fetch waits at most 5 ms for 64 KB: under load a fetch round trip (aiokafka's cost is per
        # round trip, ≈ 100 µs of CPU here) brings more records; idle or slow, an event waits ≤ 5 ms.
        self._consumer = make_consumer(self._kafka, fetch_max_wait_ms=5, fetch_min_bytes=64 * 1024)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="live-hub")
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._background):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def subscribe(self, workflow_id: str, partition: int, limit: int) -> Subscription:
        sub = Subscription(workflow_id, partition, limit)
        async with self._lock:
            self._subs.setdefault(workflow_id, set()).add(sub)
            self._per_partition[partition] = self._per_partition.get(partition, 0) + 1
            tp = TopicPartition(self._topic, partition)
            if tp not in self._next:
                try:
                    await self._assign_with(tp)
                except BaseException:  # failed or cancelled: leave no subscriber behind
                    self.unsubscribe(sub)
                    raise
            self.cache.open(workflow_id, partition, self._next[tp])
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.direct = None
        subs = self._subs.get(sub.workflow_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.workflow_id]
        left = self._per_partition.get(sub.partition, 1) - 1
        self._per_partition[sub.partition] = left
        if left <= 0 and sub.partition not in self._releasing:
            self._releasing.add(sub.partition)
            asyncio.get_running_loop().call_later(self._release_after_s, self._schedule_release, sub.partition)

    def _schedule_release(self, partition: int) -> None:
        task = asyncio.create_task(self._release(partition), name=f"live-hub-release-{partition}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, partition: int) -> None:
        """Drop a partition nobody has subscribed to since the debounce; keep the others' positions."""
        async with self._lock:
            self._releasing.discard(partition)
            tp = TopicPartition(self._topic, partition)
            if self._per_partition.get(partition, 0) > 0 or tp not in self._next or self._consumer is None:
                return
            self._per_partition.pop(partition, None)
            keep = {t: pos for t, pos in self._next.items() if t != tp}
            self._reassign(keep)
            self.cache.drop_partition(partition)

    async def _assign_with(self, new_tp: TopicPartition) -> None:
        assert self._consumer is not None
        end = (await self._consumer.end_offsets([new_tp]))[new_tp]
        keep = dict(self._next)
        keep[new_tp] = end
        self._reassign(keep)

    def _reassign(self, keep: dict[TopicPartition, int]) -> None:
        """Assign exactly ``keep``, each at the position the tail has dispatched up to.

        ``_dispatch`` drops records below these positions, so a getmany in flight
        across the change delivers nothing twice.
        """
        assert self._consumer is not None
        self._consumer.assign(list(keep))
        for tp, position in keep.items():
            self._consumer.seek(tp, position)
        self._next = keep
        self._partitions.set(len(keep))

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            if not self._next:
                await asyncio.sleep(0.05)
                continue
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            except AssertionError:  # partitions changed under a fetch; fetch again
                continue
            except KafkaError as exc:
                log.warning("live tail fetch failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            self._dispatch(batches)

    def position(self, partition: int) -> int | None:
        """Where the tail dispatches next in ``partition`` (None when not assigned)."""
        return self._next.get(TopicPartition(self._topic, partition))

    def _dispatch(self, batches: dict[TopicPartition, list[Record]]) -> None:
        """Decode each record once and hand each workflow's events of this fetch to its subscribers."""
        cache = self.cache
        subs_of = self._subs
        by_workflow: dict[str, list[Delivery]] = {}
        for tp, records in batches.items():
            expected = self._next.get(tp)
            if expected is None:
                continue
            for record in records:
                if record.offset < expected:
                    continue  # fetched before a re-seek; already dispatched
                expected = record.offset + 1
                # A key that is not UTF-8 (a poison record) names no workflow anyone follows.
                workflow_id = record.key.decode(errors="replace") if record.key else ""
                if workflow_id not in subs_of and workflow_id not in cache:
                    continue
                item = Delivery.of(record)
                if item is None:
                    continue
                held = by_workflow.get(workflow_id)
                if held is None:
                    by_workflow[workflow_id] = [item]
                else:
                    held.append(item)
            self._next[tp] = expected
            self._records.inc(len(records))
        for workflow_id, items in by_workflow.items():
            cache.extend(workflow_id, items)
            for sub in subs_of.get(workflow_id, ()):
                if not sub.offer(items):
                    self._overflows.inc()
        self.written.flush(time.time())
