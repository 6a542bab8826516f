"""The store's statements are planned for the table as it is, not as it was (store/__init__.py).

PostgreSQL's default plan cache switches a prepared statement to a generic plan after five
executions and keeps it until the next ANALYZE. On a fresh store that plan was chosen for a nearly
empty ``tasks`` table: a sequential scan, which every batched idempotency read then repeated over the
whole table as it grew (30 M rows read in 40 s of the ingest bench, docs/performance.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agentwire.service.settings import Settings, StoreSettings
from agentwire.store import connect
from agentwire.store.queries import GET_MANY
from agentwire.store.schema import migrate
from tests.support import postgres

pytestmark = pytest.mark.timeout(120)

ROWS = (
    "INSERT INTO tasks (workflow_id, tenant, session_id, status, created_at, updated_at, active_at, partition, state)"
    " SELECT 'task-' || $1::text || '-' || n, 't', 's-' || $1::text || '-' || n, 'TASK_STATUS_QUEUED', now(), now(),"
    " now(), 0, '\\x7b7d'::bytea FROM generate_series(1, $2::int) n"
)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"p{uuid.uuid4().hex[:10]}"
    yield postgres.database_dsn(name)
    postgres.drop_database(name)


async def test_batched_reads_prepared_on_a_small_table_do_not_scan_it_once_it_is_large(database: str) -> None:
    pool = await connect(Settings(store=StoreSettings(dsn=database)))
    cutoff = datetime.now(UTC) - timedelta(days=7)
    batch = [f"task-absent-{n}" for n in range(20)]  # a burst of new Idempotency-Keys
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            for round_ in range(10):  # a fresh store: a few rows, then a read; past the five custom plans
                await conn.execute(ROWS, f"small{round_}", 5)
                await conn.fetch(GET_MANY, batch, cutoff)
            await conn.execute(ROWS, "large", 20_000)
            async with conn.transaction():  # pg_stat_xact_*: this backend's counts, not yet flushed
                read = "SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'tasks'"
                before = await conn.fetchval(read)
                for _ in range(5):
                    assert await conn.fetch(GET_MANY, batch, cutoff) == []
                scanned = await conn.fetchval(read) - before
    finally:
        await pool.close()
    assert scanned == 0, f"5 batched reads scanned {scanned} rows of a 20,050-row table"
