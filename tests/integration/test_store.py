"""The query store against a real broker and a real PostgreSQL (docs/state.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from agentwire.kafka import ensure_topics
from agentwire.schema import TaskState, TaskStatus, encode
from agentwire.schema.commands import TaskSubmitted
from agentwire.service.settings import KafkaSettings, RetentionSettings, Settings, StoreSettings
from agentwire.store import InvalidCursor, Store, open_store
from tests.support import postgres
from tests.support.topics import values_of
from tests.support.wait import eventually_async

PARTITIONS = 12
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def prefix() -> Iterator[str]:
    """Unique topic prefix, and a database of the same name (dropped afterwards)."""
    name = f"s{uuid.uuid4().hex[:10]}"
    postgres.database_dsn(name)
    yield name
    postgres.drop_database(name)


def settings_for(bootstrap: str, prefix: str, *, lifetime_s: float = 7 * 86400, sweep_s: float = 60) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=PARTITIONS),
        store=StoreSettings(dsn=f"{postgres.server_url()}/{prefix}"),
        retention=RetentionSettings(tasks_days=lifetime_s / 86400, sweep_interval_s=sweep_s),
    )


def state(tenant: str, session: str, created: datetime, status: TaskStatus = TaskStatus.COMPLETED,
          *, ended: datetime | None = None) -> TaskState:
    workflow_id = f"task-{uuid.uuid4().hex[:16]}"
    task = TaskSubmitted(workflow_id=workflow_id, tenant=tenant, query="q", session_id=session, created_at=created)
    completed = (ended or created) if status.terminal else None
    return TaskState(task=task, status=status, updated_at=ended or created, completed_at=completed)


@asynccontextmanager
async def topic_writer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(settings.kafka)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def write(producer: AIOKafkaProducer, topic: str, states: list[TaskState]) -> None:
    sends = [await producer.send(topic, encode(s), key=s.workflow_id.encode()) for s in states]
    await asyncio.gather(*sends)


async def ready(store: Store) -> None:
    async def caught_up() -> bool:
        return store.tasks.ready

    await eventually_async(caught_up, 60, "store caught up")


async def test_lists_are_tenant_scoped_newest_first_with_filters_and_cursors(kafka_bootstrap: str, prefix: str) -> None:
    settings = settings_for(kafka_bootstrap, prefix)
    base = datetime.now(UTC) - timedelta(hours=1)
    acme = [state("acme", f"sess-{i % 3}", base + timedelta(seconds=i),
              TaskStatus.FAILED if i % 4 == 0 else TaskStatus.COMPLETED) for i in range(45)]
    globex = [state("globex", "sess-0", base + timedelta(seconds=i)) for i in range(5)]
    async with topic_writer(settings) as producer:
        await write(producer, settings.kafka.topics.task_state, acme + globex)
        async with open_store(settings) as store:
            await ready(store)
            tasks = store.tasks
            newest_first = sorted(acme, key=lambda s: s.task.created_at, reverse=True)

            page = await tasks.list_tasks("acme", limit=20)
            assert page.total_count == 45
            assert [s.workflow_id for s in page.tasks] == [s.workflow_id for s in newest_first[:20]]

            # the cursor walks the same order as offset/limit, to the end
            seen: list[str] = []
            cursor: str | None = None
            while True:
                page = await tasks.list_tasks("acme", limit=20, cursor=cursor)
                seen += [s.workflow_id for s in page.tasks]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == [s.workflow_id for s in newest_first]
            offset_page = await tasks.list_tasks("acme", limit=10, offset=20)
            assert [s.workflow_id for s in offset_page.tasks] == seen[20:30]

            failed = await tasks.list_tasks("acme", status=TaskStatus.FAILED, limit=100)
            assert failed.total_count == sum(1 for s in acme if s.status == TaskStatus.FAILED)
            assert all(s.status == TaskStatus.FAILED for s in failed.tasks)

            turns = await tasks.list_tasks("acme", session_id="sess-1", limit=100, oldest_first=True)
            expected = sorted((s for s in acme if s.task.session_id == "sess-1"), key=lambda s: s.task.created_at)
            assert [s.workflow_id for s in turns.tasks] == [s.workflow_id for s in expected]

            sessions = await tasks.list_sessions("acme")
            assert sessions.total_count == 3
            assert [s.session_id for s in sessions.sessions] == ["sess-2", "sess-1", "sess-0"]  # sess-2 has i=44
            assert sum(s.task_count for s in sessions.sessions) == 45
            assert (await tasks.get_session("globex", "sess-1")) is None  # another tenant's session is unknown

            assert (await tasks.list_tasks("globex", limit=100)).total_count == 5
            assert await tasks.get(globex[0].workflow_id) is not None
            with pytest.raises(InvalidCursor):
                await tasks.list_tasks("acme", cursor="not-a-cursor")

            # a tombstone removes the task from every query, and from its session
            victim = acme[44]
            await producer.send_and_wait(settings.kafka.topics.task_state, None, key=victim.workflow_id.encode())
            assert await tasks.catch_up(5.0)
            assert await tasks.get(victim.workflow_id) is None
            assert (await tasks.list_tasks("acme")).total_count == 44
            session = await tasks.get_session("acme", "sess-2")
            assert session is not None and session.task_count == 14


async def test_read_your_writes_and_restart_from_stored_offsets(kafka_bootstrap: str, prefix: str) -> None:
    settings = settings_for(kafka_bootstrap, prefix)
    now = datetime.now(UTC)
    async with topic_writer(settings) as producer:
        first = [state("acme", "s", now) for _ in range(30)]
        await write(producer, settings.kafka.topics.task_state, first)
        async with open_store(settings) as store:
            await ready(store)
            # written after the store started: visible to a lookup right after the write returns
            fresh = state("acme", "s", now, TaskStatus.QUEUED)
            await write(producer, settings.kafka.topics.task_state, [fresh])
            found = await store.tasks.lookup(fresh.workflow_id, 2.0)
            assert found is not None and found.status == TaskStatus.QUEUED
            assert await store.tasks.lookup("task-never-written", 0.5) is None
            assert (await store.tasks.list_tasks("acme", status=TaskStatus.QUEUED)).total_count == 1

            # a status change moves the task between the per-status counts
            done = fresh.model_copy(update={"status": TaskStatus.COMPLETED, "completed_at": now})
            await write(producer, settings.kafka.topics.task_state, [done])
            assert await store.tasks.catch_up(5.0)
            assert (await store.tasks.list_tasks("acme", status=TaskStatus.QUEUED)).total_count == 0
            assert (await store.tasks.list_tasks("acme", status=TaskStatus.COMPLETED)).total_count == 31
            assert (await store.tasks.list_tasks("acme", session_id="s")).total_count == 31

        # while no indexer runs, more records arrive; a restart applies only those
        later = [state("acme", "s", now) for _ in range(20)]
        await write(producer, settings.kafka.topics.task_state, later)
        async with open_store(settings) as store:
            await ready(store)
            assert (await store.tasks.list_tasks("acme")).total_count == 51
            conn = await asyncpg.connect(settings.store.dsn)
            try:
                indexed = await conn.fetchval("SELECT sum(next_offset) FROM task_state_offsets")
            finally:
                await conn.close()
            assert indexed == 52  # 30 + 1 + its update + 20


async def test_two_indexers_share_the_partitions_and_agree(kafka_bootstrap: str, prefix: str) -> None:
    settings = settings_for(kafka_bootstrap, prefix)
    now = datetime.now(UTC)
    async with topic_writer(settings) as producer, open_store(settings) as one, open_store(settings) as two:
        await ready(one)
        await ready(two)
        batch = [state(f"tenant-{i % 4}", "s", now + timedelta(milliseconds=i)) for i in range(400)]
        await write(producer, settings.kafka.topics.task_state, batch)
        assert await one.tasks.catch_up(20.0) and await two.tasks.catch_up(20.0)
        for tenant in ("tenant-0", "tenant-3"):
            a = await one.tasks.list_tasks(tenant, limit=100)
            b = await two.tasks.list_tasks(tenant, limit=100)
            assert a.total_count == b.total_count == 100
            assert [s.workflow_id for s in a.tasks] == [s.workflow_id for s in b.tasks]


async def test_a_task_past_its_lifetime_is_gone_and_tombstoned(kafka_bootstrap: str, prefix: str) -> None:
    lifetime_s = 2.0
    settings = settings_for(kafka_bootstrap, prefix, lifetime_s=lifetime_s, sweep_s=0.3)
    topic = settings.kafka.topics.task_state
    async with topic_writer(settings) as producer, open_store(settings) as store:
        await ready(store)
        ended = state("acme", "s", datetime.now(UTC))
        running = state("acme", "s", datetime.now(UTC), TaskStatus.RUNNING)
        await write(producer, topic, [ended, running])
        assert await store.tasks.lookup(ended.workflow_id, 2.0) is not None

        # keep the running task active while the ended one ages out
        async def still_running() -> bool:
            touched = running.model_copy(update={"updated_at": datetime.now(UTC)})
            await write(producer, topic, [touched])
            return await store.tasks.get(ended.workflow_id) is None

        await eventually_async(still_running, lifetime_s + 5, "ended task invisible after its lifetime")
        assert (await store.tasks.list_tasks("acme")).total_count == 1
        assert await store.tasks.get(running.workflow_id) is not None

        conn = await asyncpg.connect(settings.store.dsn)
        try:
            async def row_deleted() -> bool:
                count = await conn.fetchval("SELECT count(*) FROM tasks WHERE workflow_id = $1", ended.workflow_id)
                return bool(count == 0)

            await eventually_async(row_deleted, 10, "expired row deleted by its tombstone")
        finally:
            await conn.close()
        assert None in await values_of(settings.kafka.bootstrap_servers, topic, ended.workflow_id)
