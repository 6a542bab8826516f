"""The live tail: one Kafka consumer per edge process, fanned out to subscribers.

The consumer (librdkafka on a thread of its own, tail.py) is assigned only the
partitions that current subscribers need. A new partition starts at its end offset,
fetched explicitly (never a lazy reset), so a subscriber knows that everything from
the moment it subscribed will reach it; its session reads what came before from
history. Each batch the consumer polls is dispatched here, on the event loop. Each subscriber's queue is bounded:
past ``limit`` records it is marked overflowed and emptied, and its session goes
back to reading Kafka from its own position (Kafka is the buffer).

Once a session has caught up, it hands the subscription a direct writer
(``Subscription.direct``, see wire.py): from then on the tail writes each batch's
events to that client itself, in the same pass that decoded them, and the
session's task sleeps until the writer stops (the stream ended, the client fell
behind or left).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from confluent_kafka import Message

from agentwire.edge.delivery import Delivery
from agentwire.edge.metrics import WriteTally
from agentwire.edge.recent import RecentCache
from agentwire.edge.sightings import Sightings
from agentwire.edge.tail import TailConsumer
from agentwire.kafka.metrics import counter, gauge
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)


class DirectWriter(Protocol):
    """A caught-up client's writer, called by the tail (wire.py); session.py makes them."""

    def write(self, items: list[Delivery]) -> bool:
        """Write a workflow's events of one batch; False to stop writing directly (the session recorded why)."""

    def keepalive(self) -> None:
        """Write a keepalive. Raises ConnectionResetError when the client has gone."""


class Subscription:
    """One session's place in the live tail: a bounded queue, or a direct writer once caught up.

    Held once per client, so it is lean: no Event (a deque and a future per client) but one future,
    made only while the session waits (``woken``), and no timer: the hub's one keepalive timer writes
    to every direct writer.
    """

    __slots__ = ("_waiter", "_woken", "direct", "gone", "limit", "overflowed", "partition", "queue", "workflow_id")

    def __init__(self, workflow_id: str, partition: int, limit: int) -> None:
        self.workflow_id = workflow_id
        self.partition = partition
        self.limit = limit
        self.queue: list[Delivery] = []
        self.overflowed = False
        self.gone = False  # a direct write found the client gone
        self.direct: DirectWriter | None = None
        self._woken = False  # the session has something to do (what asyncio.Event's flag would say)
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, items: list[Delivery]) -> bool:
        """Hand over a workflow's events of one batch; returns False when this offer overflowed."""
        if self.direct is not None:
            try:
                keep = self.direct.write(items)
            except ConnectionResetError:
                keep, self.gone = False, True
            if not keep:
                self.direct = None
                self._wake()
            return not self.overflowed
        if self.overflowed:
            return True
        if len(self.queue) + len(items) > self.limit:
            self.overflowed = True
            self.queue = []
            self._wake()
            return False
        self.queue.extend(items)
        self._wake()
        return True

    def keepalive(self) -> None:
        """Write a keepalive through the direct writer, if any (called by the hub's timer)."""
        if self.direct is not None:
            try:
                self.direct.keepalive()
            except ConnectionResetError:
                self.direct, self.gone = None, True
                self._wake()

    def woken(self) -> asyncio.Future[None]:
        """A future done once there is something for the session: events queued, an overflow, or the
        direct writer stopped. Awaiting it consumes the wake-up (like waiting on an Event, then clearing it).
        """
        waiter = asyncio.get_running_loop().create_future()
        if self._woken:
            self._woken = False
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        else:  # nobody waits (or the waiter was cancelled): the next woken() returns at once
            self._woken = True

    def take(self) -> list[Delivery]:
        items = self.queue
        self.queue = []
        self._woken = False
        return items

    def rejoin(self) -> None:
        """Start queueing again after an overflow (the session catches up from Kafka)."""
        self.queue = []
        self.overflowed = False
        self.direct = None
        self._woken = False


class LiveHub:
    def __init__(self, kafka: KafkaSettings, *, release_after_s: float = 5.0,
                 cache: RecentCache | None = None, keepalive_s: float = 15.0) -> None:
        self._kafka = kafka
        self._topic = kafka.topics.events
        self._tail: TailConsumer | None = None
        self._subs: dict[str, set[Subscription]] = {}
        self._per_partition: dict[int, int] = {}
        self._next: dict[int, int] = {}  # partition: the offset the tail dispatches next
        self._lock = asyncio.Lock()
        self._releasing: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._release_after_s = release_after_s
        self._keepalive_s = keepalive_s
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self.cache = cache or RecentCache(max_bytes=0, max_events=0)
        self.sightings = Sightings()  # where the tail first saw each workflow: empty history reads skipped
        self.written = WriteTally()  # direct writers add to it; handed to Prometheus once per batch
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
        self._tail = TailConsumer(self._kafka.bootstrap_servers, self._topic, self._dispatch)
        await self._tail.start()
        self._keepalive_timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._keepalive)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        for task in list(self._background):
            task.cancel()
        if self._tail is not None:
            await self._tail.stop()

    async def subscribe(self, workflow_id: str, partition: int, limit: int) -> Subscription:
        sub = Subscription(workflow_id, partition, limit)
        async with self._lock:
            self._subs.setdefault(workflow_id, set()).add(sub)
            self._per_partition[partition] = self._per_partition.get(partition, 0) + 1
            if partition not in self._next:
                assert self._tail is not None
                assigning = asyncio.ensure_future(
                    self._tail.assign_at_end(partition, lambda end: self._assigned(partition, end)))
                try:
                    await asyncio.shield(assigning)
                except BaseException:  # failed or cancelled: leave no subscriber behind
                    if not assigning.done():  # finish under the lock, so that no one assigns it twice
                        await asyncio.wait({assigning})
                    self.unsubscribe(sub)
                    raise
            self.cache.open(workflow_id, partition, self._next[partition])
        return sub

    def _assigned(self, partition: int, end: int) -> None:
        """The tail reads ``partition`` from ``end`` on (runs before any of its records is dispatched)."""
        self._next[partition] = end
        self.sightings.start(partition, end)
        self._partitions.set(len(self._next))
        if self._per_partition.get(partition, 0) <= 0:  # its subscriber was cancelled meanwhile
            self._release_later(partition)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.direct = None
        subs = self._subs.get(sub.workflow_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.workflow_id]
        left = self._per_partition.get(sub.partition, 1) - 1
        self._per_partition[sub.partition] = left
        if left <= 0:
            self._release_later(sub.partition)

    def _release_later(self, partition: int) -> None:
        if partition not in self._releasing:
            self._releasing.add(partition)
            asyncio.get_running_loop().call_later(self._release_after_s, self._schedule_release, partition)

    def _schedule_release(self, partition: int) -> None:
        task = asyncio.create_task(self._release(partition), name=f"live-hub-release-{partition}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, partition: int) -> None:
        """Drop a partition nobody has subscribed to since the debounce; the others keep their positions."""
        async with self._lock:
            self._releasing.discard(partition)
            if self._per_partition.get(partition, 0) > 0 or partition not in self._next or self._tail is None:
                return
            self._per_partition.pop(partition, None)
            del self._next[partition]  # from now on its records are not dispatched
            self._partitions.set(len(self._next))
            self.cache.drop_partition(partition)
            self.sightings.drop(partition)
            await self._tail.unassign(partition)

    def _keepalive(self) -> None:
        """Every ``keepalive_s``: a keepalive to each client the tail writes to directly.

        One timer for the process instead of one per client; a session that is not caught up writes its
        own keepalives (session.py).
        """
        self._keepalive_timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._keepalive)
        for subs in self._subs.values():
            for sub in subs:
                sub.keepalive()

    def position(self, partition: int) -> int | None:
        """Where the tail dispatches next in ``partition`` (None when not assigned)."""
        return self._next.get(partition)

    def _dispatch(self, batch: list[Message]) -> None:
        """Decode each record once and hand each workflow's events of this batch to its subscribers.

        Runs on the loop, called by the tail's consumer for each batch it polled (tail.py).
        """
        cache = self.cache
        saw = self.sightings.saw
        subs_of = self._subs
        positions = self._next
        by_workflow: dict[str, list[Delivery]] = {}
        for message in batch:
            partition = message.partition()
            expected = positions.get(partition)
            if expected is None:
                continue  # dropped meanwhile (or an error event, which names no partition)
            if message.error() is not None:
                log.warning("live tail: %s", message.error())
                continue
            offset = message.offset()
            if offset < expected:
                continue  # fetched before the partition was dropped and assigned again
            positions[partition] = offset + 1
            key = message.key()
            # A key that is not UTF-8 (a poison record) names no workflow anyone follows.
            workflow_id = key.decode(errors="replace") if key else ""
            saw(partition, workflow_id, offset)
            if workflow_id not in subs_of and workflow_id not in cache:
                continue
            item = Delivery.decode(message.value(), partition, offset)
            if item is None:
                continue
            held = by_workflow.get(workflow_id)
            if held is None:
                by_workflow[workflow_id] = [item]
            else:
                held.append(item)
        self._records.inc(len(batch))
        for workflow_id, items in by_workflow.items():
            cache.extend(workflow_id, items)
            for sub in subs_of.get(workflow_id, ()):
                if not sub.offer(items):
                    self._overflows.inc()
        self.written.flush(time.time())
