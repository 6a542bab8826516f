"""StateIndexer: keeps the store's ``tasks`` table equal to the task-state topic.

Every ingest and edge process runs one; they form one consumer group, so each
partition of the topic is indexed by one process at a time. A partition's batch
is applied in one database transaction together with the partition's next
offset (``task_state_offsets``), so the index is exact whatever crashes or
rebalances happen: a process starts each partition where the table says, and a
batch that a former owner already applied is skipped (the offset row is locked
and compared first). A commit announces the new offset with ``NOTIFY`` so that
readers waiting for read-your-writes wake at once (see ``progress.py``).

The indexer also ends lifetimes: for the partitions it owns it writes a
tombstone to the task-state topic for every task whose ``active_at`` is older
than ``retention.tasks_days``; indexing that tombstone deletes the row. Kafka's
compaction then removes the record and, later, the tombstone itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from agentwire.kafka.clients import make_consumer
from agentwire.kafka.consume import Record
from agentwire.kafka.metrics import counter
from agentwire.schema import DecodeError
from agentwire.service.settings import KafkaSettings, RetentionSettings
from agentwire.store.progress import NOTIFY_CHANNEL
from agentwire.store.rows import TaskRow, task_row

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_RECORDS = 1000  # per fetch: bounds what one batch holds in memory
SWEEP_BATCH = 5000
RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

UPSERT = """
INSERT INTO tasks AS t (workflow_id, tenant, session_id, status, created_at, updated_at, completed_at,
                        active_at, partition, state, tokens, cost)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                     $7::timestamptz[], $8::timestamptz[], $9::integer[], $10::bytea[], $11::bigint[],
                     $12::float8[])
ON CONFLICT (workflow_id) DO UPDATE SET
    status = EXCLUDED.status, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    completed_at = EXCLUDED.completed_at, active_at = EXCLUDED.active_at, partition = EXCLUDED.partition,
    state = EXCLUDED.state, tokens = EXCLUDED.tokens, cost = EXCLUDED.cost
"""


def group_id(kafka: KafkaSettings) -> str:
    return f"{kafka.topic_prefix}.state-index"


class StateIndexer:
    """Indexes the task-state topic into ``tasks``; subclasses index another topic the same way."""

    OFFSETS = "task_state_offsets"  # the table of each partition's next offset to apply

    def __init__(
        self,
        kafka: KafkaSettings,
        pool: asyncpg.Pool,
        retention: RetentionSettings,
        producer: AIOKafkaProducer,
    ) -> None:
        self._kafka = kafka
        self._topic = self.topic_of(kafka)
        self._pool = pool
        self._retention = retention
        self._producer = producer
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[int, int] = {}  # partition → next offset to apply, for the partitions owned
        self._tasks: list[asyncio.Task[None]] = []
        self._applied = counter("agentwire_store_records_indexed_total", "Task-state records applied to the store")
        self._skipped = counter("agentwire_store_records_skipped_total", "Task-state records the store could not index")
        self._tombstones = counter(
            "agentwire_store_tombstones_total", "Tombstones written for tasks past their lifetime"
        )

    def topic_of(self, kafka: KafkaSettings) -> str:
        return kafka.topics.task_state

    def group_of(self, kafka: KafkaSettings) -> str:
        return group_id(kafka)

    async def start(self) -> None:
        consumer = make_consumer(
            self._kafka, group_id=self.group_of(self._kafka), isolation_level="read_committed",
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000, max_poll_interval_ms=300_000,
            # prefetch bounds what a rebuild holds in memory (aiokafka's defaults: 1 MB per partition)
            max_partition_fetch_bytes=256 * 1024, fetch_max_bytes=2 * 1024 * 1024,
            # a record is fetched as soon as it is there (fetch_min_bytes 1); this only spaces the empty
            # fetches of an idle topic, each ≈ 1 ms of aiokafka's Python for 12 partitions (py-spy, docs/edge.md)
            fetch_max_wait_ms=500,
        )
        consumer.subscribe([self._topic], listener=_Positioner(self))
        self._consumer = consumer  # before start: the first assignment may come while it starts
        await consumer.start()
        self._tasks = [
            asyncio.create_task(self._index_forever(), name="store-indexer"),
            asyncio.create_task(self._sweep_forever(), name="store-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._consumer is not None:
            await self._consumer.stop()

    # -- indexing -------------------------------------------------------------------------------

    async def position_partitions(self, assigned: Sequence[TopicPartition]) -> None:
        """Start each newly owned partition at the offset the store recorded for it."""
        assert self._consumer is not None
        partitions = [tp.partition for tp in assigned]
        async with self._pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self.OFFSETS} (partition, next_offset) SELECT p, 0"  # noqa: S608 - a class constant
                " FROM unnest($1::integer[]) p ON CONFLICT DO NOTHING",
                partitions,
            )
            rows = await conn.fetch(
                f"SELECT partition, next_offset FROM {self.OFFSETS} WHERE partition = ANY($1)",  # noqa: S608
                partitions,
            )
        stored = {row["partition"]: row["next_offset"] for row in rows}
        self._next = {p: n for p, n in self._next.items() if any(tp.partition == p for tp in assigned)}
        for tp in assigned:
            self._next[tp.partition] = stored[tp.partition]
            self._consumer.seek(tp, stored[tp.partition])

    async def _index_forever(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=BATCH_RECORDS)
                for tp, records in batches.items():
                    if records:
                        await _retrying(lambda tp=tp, records=records: self._apply(tp.partition, records))
                if not batches:
                    await self._advance_idle()
            except (asyncpg.PostgresError, OSError, asyncpg.exceptions.InterfaceError) as exc:
                log.warning("indexing task-state failed, starting again from the stored offsets: %s", exc)
                await asyncio.sleep(1.0)  # the database is away: do not spin
                with contextlib.suppress(asyncpg.PostgresError, OSError, asyncpg.exceptions.InterfaceError):
                    await self.position_partitions(list(self._consumer.assignment()))

    async def _apply(self, partition: int, records: list[Record]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                f"SELECT next_offset FROM {self.OFFSETS} WHERE partition = $1 FOR UPDATE", partition  # noqa: S608
            )
            fresh = [r for r in records if stored is None or r.offset >= stored]
            if not fresh:
                return  # a former owner of the partition applied these already
            await self.write(conn, partition, fresh)
            next_offset = fresh[-1].offset + 1
            await conn.execute(
                f"INSERT INTO {self.OFFSETS} (partition, next_offset) VALUES ($1, $2)"  # noqa: S608
                " ON CONFLICT (partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                partition, next_offset,
            )
            await self.announce(conn, partition, next_offset)
        self._next[partition] = next_offset
        self._applied.inc(len(fresh))

    async def announce(self, conn: asyncpg.Connection, partition: int, next_offset: int) -> None:
        """Tell the readers waiting for read-your-writes (``progress.py``) how far the partition is indexed."""
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, f"{partition}:{next_offset}")

    def latest(self, partition: int, fresh: list[Record], parse: Callable[[bytes, bytes], T]) -> dict[bytes, T | None]:
        """The last record of each key (compaction's rule): parsed, or None for a tombstone; bad ones skipped."""
        latest: dict[bytes, T | None] = {}
        for record in fresh:
            if record.key is None:
                self._skipped.inc()
                continue
            if record.value is None:
                try:
                    record.key.decode()
                except UnicodeDecodeError:  # a poison tombstone: no workflow id has this key
                    self._skipped.inc()
                    continue
                latest[record.key] = None
                continue
            try:
                latest[record.key] = parse(record.key, record.value)
            except DecodeError as exc:
                self._skipped.inc()
                log.warning("%s record %d-%d not indexed: %s", self._topic, partition, record.offset, exc)
        return latest

    async def write(self, conn: asyncpg.Connection, partition: int, fresh: list[Record]) -> None:
        """Apply one partition's new records, in the transaction that records their offset."""
        latest = self.latest(partition, fresh, task_row)
        gone = [key.decode() for key, row in latest.items() if row is None]
        rows = sorted((row for row in latest.values() if row is not None), key=_lock_order)
        if gone:
            await conn.execute("DELETE FROM tasks WHERE workflow_id = ANY($1::text[])", sorted(gone))
        if rows:
            await conn.execute(UPSERT, *_columns(rows, partition))

    async def _advance_idle(self) -> None:
        """Offsets with no record (compaction, transaction markers) still count as applied."""
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            known = self._next.get(tp.partition)
            if known is None:
                continue
            position = await self._consumer.position(tp)
            if position > known:
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        f"UPDATE {self.OFFSETS} SET next_offset = $2"  # noqa: S608 - a class constant
                        " WHERE partition = $1 AND next_offset < $2",
                        tp.partition, position,
                    )
                    await self.announce(conn, tp.partition, position)
                self._next[tp.partition] = position

    # -- lifetimes ------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        interval = self._retention.sweep_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except (asyncpg.PostgresError, OSError, asyncpg.exceptions.InterfaceError) as exc:
                log.warning("lifetime sweep failed (next in %.0f s): %s", interval, exc)

    async def sweep(self) -> int:
        """Tombstone the owned partitions' tasks past their lifetime; returns how many."""
        owned = sorted(self._next)
        if not owned:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention.tasks_seconds)
        written = 0
        while True:
            rows = await self._pool.fetch(
                "SELECT workflow_id FROM tasks WHERE partition = ANY($1) AND active_at <= $2 LIMIT $3",
                owned, cutoff, SWEEP_BATCH,
            )
            if not rows:
                return written
            sends = [await self._producer.send(self._topic, None, key=row["workflow_id"].encode()) for row in rows]
            await asyncio.gather(*sends)
            written += len(rows)
            self._tombstones.inc(len(rows))
            if len(rows) < SWEEP_BATCH:
                return written
            # wait until our own tombstones are indexed before looking again, or we would send them twice
            await asyncio.sleep(self._retention.sweep_interval_s)


class _Positioner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, indexer: StateIndexer) -> None:
        self._indexer = indexer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None  # every applied batch is already committed with its offset

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._indexer.position_partitions(list(assigned))


def _lock_order(row: TaskRow) -> tuple[str, str, str]:
    # Concurrent partitions touch shared session rows (triggers): one order for all avoids deadlocks.
    return (row.tenant, row.session_id, row.workflow_id)


def _columns(rows: list[TaskRow], partition: int) -> list[list[Any]]:
    return [
        [r.workflow_id for r in rows],
        [r.tenant for r in rows],
        [r.session_id for r in rows],
        [r.status for r in rows],
        [r.created_at for r in rows],
        [r.updated_at for r in rows],
        [r.completed_at for r in rows],
        [r.active_at for r in rows],
        [partition] * len(rows),
        [r.state for r in rows],
        [r.tokens for r in rows],
        [r.cost for r in rows],
    ]


async def _retrying(attempt: Callable[[], Awaitable[T]], tries: int = 5) -> T:
    """Run a transaction again when PostgreSQL chose it as a deadlock victim."""
    for n in range(1, tries + 1):
        try:
            return await attempt()
        except RETRYABLE:
            if n == tries:
                raise
            log.info("store transaction retried after a deadlock (%d)", n)
    raise AssertionError("unreachable")
