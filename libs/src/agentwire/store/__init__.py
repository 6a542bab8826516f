"""The query store: a PostgreSQL index of the task-state topic (docs/state.md).

    async with open_store(settings) as store:      # connects, migrates, starts indexing
        state = await store.tasks.lookup(workflow_id, timeout=2.0)
        page = await store.tasks.list_tasks(tenant, status=..., limit=20, cursor=...)

The topic stays the record; the store is derived from it and can be rebuilt
from it at any time (drop the tables, restart: the indexer starts at offset 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from agentwire.kafka.clients import make_producer
from agentwire.service.settings import Settings
from agentwire.store.indexer import StateIndexer
from agentwire.store.progress import IndexProgress
from agentwire.store.queries import InvalidCursor, SessionPage, SessionStats, SessionSummary, TaskPage, TaskStore
from agentwire.store.schema import migrate
from agentwire.store.sessions import SessionIndexer

__all__ = [
    "InvalidCursor",
    "SessionPage",
    "SessionStats",
    "SessionSummary",
    "Store",
    "TaskPage",
    "TaskStore",
    "open_store",
]

log = logging.getLogger(__name__)

# Every execution of a prepared statement is planned for its table as it is now. PostgreSQL's default
# ("auto") switches a statement to a generic plan after five executions and keeps it until the next
# ANALYZE: one chosen while ``tasks`` was nearly empty (a fresh store, before autovacuum's first ANALYZE
# a minute later) scanned the whole table for every idempotency read, 30 M rows read in 40 s of the
# ingest bench (docs/performance.md). Planning these short statements costs far less than one such scan.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


@dataclass
class Store:
    tasks: TaskStore
    pool: asyncpg.Pool
    indexer: StateIndexer | None


async def connect(settings: Settings) -> asyncpg.Pool:
    """A connection pool, retrying while the database starts (up to ``store.connect_timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.store.connect_timeout_s
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                settings.store.dsn, min_size=1, max_size=settings.store.pool_size, command_timeout=30,
                reset=end_transaction, server_settings=SERVER_SETTINGS,
            )
            return pool
        except (OSError, asyncpg.PostgresError, asyncpg.exceptions.InterfaceError) as exc:
            if loop.time() > deadline:
                raise
            log.info("waiting for the store (%s)", exc)
            await asyncio.sleep(0.5)


async def end_transaction(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: an open transaction ended.

    asyncpg's default reset (advisory locks, cursors, LISTEN, RESET ALL) costs a round trip per
    release (8 % of ingest's samples under load, docs/performance.md); the store's statements leave
    none of that behind: no session settings, advisory locks only inside transactions, LISTEN only
    on IndexProgress's own connection, which is not pooled.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


@contextlib.asynccontextmanager
async def open_store(settings: Settings, *, index: bool = True) -> AsyncIterator[Store]:
    """Connect, migrate, follow the index's progress and (``index``) run an indexer; ready in the background."""
    pool = await connect(settings)
    progress: IndexProgress | None = None
    indexer: StateIndexer | None = None
    sessions: SessionIndexer | None = None
    producer = make_producer(settings.kafka) if index else None
    ready: asyncio.Task[None] | None = None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        progress = IndexProgress(settings.kafka, pool, settings.store.dsn)
        await progress.start()
        if producer is not None:
            await producer.start()
            indexer = StateIndexer(settings.kafka, pool, settings.retention, producer)
            await indexer.start()
            sessions = SessionIndexer(settings.kafka, pool, settings.retention, producer)
            await sessions.start()
        tasks = TaskStore(pool, progress, lifetime_s=settings.retention.tasks_seconds,
                          partitions=settings.kafka.partitions)
        ready = asyncio.create_task(_become_ready(tasks, progress), name="store-ready")
        yield Store(tasks, pool, indexer)
    finally:
        if ready is not None:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        if sessions is not None:
            await sessions.stop()
        if indexer is not None:
            await indexer.stop()
        if producer is not None:
            await producer.stop()
        if progress is not None:
            await progress.stop()
        await pool.close()


async def _become_ready(tasks: TaskStore, progress: IndexProgress) -> None:
    await progress.catch_up()
    tasks.ready = True
    log.info("store caught up with the task-state topic")
