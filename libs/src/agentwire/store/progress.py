"""How far the store has indexed the task-state topic, and waiting for it (read-your-writes).

A task submitted through any pod is in the topic when its submit returns; it is
in the store once the indexer that owns its partition has applied the offset.
``IndexProgress`` listens to the indexers' ``NOTIFY`` (one connection per
process) and wakes the readers waiting for an offset. A missed notification
(a reconnect) costs at most ``REFRESH_S``: waiters re-read the offsets table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from agentwire.kafka.clients import make_consumer
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "agentwire_task_state_indexed"
REFRESH_S = 0.25


class IndexProgress:
    def __init__(self, kafka: KafkaSettings, pool: asyncpg.Pool, dsn: str) -> None:
        self._kafka = kafka
        self._pool = pool
        self._dsn = dsn
        self._tps = [TopicPartition(kafka.topics.task_state, p) for p in range(kafka.partitions)]
        self._indexed: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._offsets: AIOKafkaConsumer | None = None
        # end offsets shared by concurrent readers (one ListOffsets request for a burst of lookups)
        self._ends_lock = asyncio.Lock()
        self._ends_asked = 0  # tickets handed out
        self._ends_served = 0  # every ticket up to this one is answered by ``_ends``
        self._ends: dict[int, int] = {}

    async def start(self) -> None:
        self._offsets = make_consumer(self._kafka, isolation_level="read_committed")
        await self._offsets.start()
        await self._listen()
        await self.refresh()

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.remove_termination_listener(self._lost)
            with contextlib.suppress(asyncpg.PostgresError, OSError, asyncpg.exceptions.InterfaceError):
                await listener.close()
        if self._offsets is not None:
            await self._offsets.stop()

    async def _listen(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        await conn.add_listener(NOTIFY_CHANNEL, self._notified)
        conn.add_termination_listener(self._lost)
        self._listener = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        partition, _, offset = payload.partition(":")
        p, n = int(partition), int(offset)
        if n > self._indexed.get(p, -1):
            self._indexed[p] = n
            self._changed.set()

    def _lost(self, _conn: object) -> None:
        log.warning("store notification connection lost; waiters fall back to reading the offsets table")
        self._listener = None

    async def refresh(self) -> None:
        rows = await self._pool.fetch("SELECT partition, next_offset FROM task_state_offsets")
        for row in rows:
            self._indexed[row["partition"]] = max(self._indexed.get(row["partition"], 0), row["next_offset"])
        self._changed.set()

    async def end_offsets(self, partitions: list[int] | None = None) -> dict[int, int]:
        """The topic's end offsets now (of ``partitions``, default all).

        "Now" means: read by a request that began after this call did. Concurrent callers share one
        request (for all partitions): a caller waits for the request in flight, then takes the
        answer of the next one if that one began after the caller asked. Under a burst of lookups
        this is one ListOffsets per round trip instead of one per lookup.
        """
        assert self._offsets is not None, "progress not started"
        self._ends_asked += 1
        ticket = self._ends_asked
        async with self._ends_lock:
            if self._ends_served < ticket:
                covers = self._ends_asked  # every ticket handed out before this request begins
                ends = await self._offsets.end_offsets(self._tps)
                self._ends = {tp.partition: int(end) for tp, end in ends.items()}
                self._ends_served = covers
            ends_now = self._ends
        return ends_now if partitions is None else {p: ends_now[p] for p in partitions}

    def indexed(self, partition: int) -> int:
        """The partition's offset known to be indexed (and committed) by now."""
        return self._indexed.get(partition, 0)

    def reached(self, targets: dict[int, int]) -> bool:
        return all(target <= 0 or self._indexed.get(p, 0) >= target for p, target in targets.items())

    async def wait(self, targets: dict[int, int]) -> None:
        """Return once every partition's indexed offset reaches its target (caller bounds the wait)."""
        while not self.reached(targets):
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), REFRESH_S)
            except TimeoutError:
                await self.refresh()
                if self._listener is None:
                    with contextlib.suppress(asyncpg.PostgresError, OSError):
                        await self._listen()

    async def catch_up(self, partitions: list[int] | None = None) -> None:
        """Wait until everything written to the topic before this call is in the store."""
        await self.wait(await self.end_offsets(partitions))
