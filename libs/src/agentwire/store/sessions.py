"""Sessions in the store: the client's metadata (titles, deletions) indexed from the sessions topic.

The ``sessions`` table is derived from the tasks (triggers on ``tasks``); what a client sets on a
session travels on the compacted sessions topic (``SessionMeta``) and lands in ``session_meta``,
applied by ``SessionIndexer`` exactly as ``StateIndexer`` applies task states: each partition's
batch in one transaction with the partition's next offset (``session_meta_offsets``).

Lifetimes: a ``session_meta`` row lives while its session does; once the session's last task is
gone and the metadata is older than the tasks' lifetime, the indexer that owns its partition
writes a tombstone, and indexing the tombstone deletes the row.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from agentwire.kafka.consume import Record
from agentwire.schema import DecodeError, SessionMeta, decode, session_key
from agentwire.service.settings import KafkaSettings
from agentwire.store.indexer import SWEEP_BATCH, StateIndexer

log = logging.getLogger(__name__)

SESSIONS_WITH_META = (
    "sessions s LEFT JOIN session_meta m ON m.tenant = s.tenant AND m.session_id = s.session_id"
)
SESSION_COLUMNS = (
    "s.session_id, s.task_count, s.first_task_at, s.last_task_at, m.title, m.updated_at AS meta_updated_at"
)
SESSION_TOTALS = """
SELECT session_id,
       sum(tokens) AS tokens,
       sum(cost) AS cost,
       count(*) FILTER (WHERE status = 'TASK_STATUS_COMPLETED') AS succeeded,
       count(*) FILTER (WHERE status IN ('TASK_STATUS_FAILED', 'TASK_STATUS_TIMEOUT')) AS failed,
       count(*) FILTER (WHERE completed_at IS NULL) AS running,
       max(active_at) AS last_activity
FROM tasks WHERE tenant = $1 AND session_id = ANY($2::text[]) AND active_at > $3
GROUP BY session_id
"""
SESSION_ENDS = """
(SELECT DISTINCT ON (session_id) session_id, state, true AS latest FROM tasks
 WHERE tenant = $1 AND session_id = ANY($2::text[]) AND active_at > $3
 ORDER BY session_id, created_at DESC, workflow_id DESC)
UNION ALL
(SELECT DISTINCT ON (session_id) session_id, state, false AS latest FROM tasks
 WHERE tenant = $1 AND session_id = ANY($2::text[]) AND active_at > $3
 ORDER BY session_id, created_at ASC, workflow_id ASC)
"""
UPSERT_META = """
INSERT INTO session_meta AS m (tenant, session_id, title, deleted_at, updated_at, partition)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::integer[])
ON CONFLICT (tenant, session_id) DO UPDATE SET
    title = EXCLUDED.title, deleted_at = EXCLUDED.deleted_at, updated_at = EXCLUDED.updated_at,
    partition = EXCLUDED.partition
WHERE m.updated_at <= EXCLUDED.updated_at
"""


async def upsert_session_meta(conn: asyncpg.Connection, metas: list[SessionMeta], partition: int) -> None:
    """Write metadata rows; an older record never overwrites a newer one."""
    metas = sorted(metas, key=lambda m: (m.tenant, m.session_id))  # one lock order for concurrent writers
    await conn.execute(UPSERT_META, [m.tenant for m in metas], [m.session_id for m in metas],
                       [m.title for m in metas], [m.deleted_at for m in metas], [m.updated_at for m in metas],
                       [partition] * len(metas))


def _meta(key: bytes, value: bytes) -> SessionMeta:
    meta = decode(SessionMeta, value)
    if "\x00" in (meta.title or ""):  # PostgreSQL text holds no NUL (ingest refuses one)
        raise DecodeError("a NUL in the session title")
    if session_key(meta.tenant, meta.session_id) != key:
        raise DecodeError(f"record key {key!r} is not its session's")
    return meta


class SessionIndexer(StateIndexer):
    """Keeps ``session_meta`` equal to the sessions topic (one consumer group across ingest and edge)."""

    OFFSETS = "session_meta_offsets"

    def topic_of(self, kafka: KafkaSettings) -> str:
        return kafka.topics.sessions

    def group_of(self, kafka: KafkaSettings) -> str:
        return f"{kafka.topic_prefix}.session-index"

    async def announce(self, conn: asyncpg.Connection, partition: int, next_offset: int) -> None:
        return None  # nobody waits for this topic: the writing pod applies its own writes at once

    async def write(self, conn: asyncpg.Connection, partition: int, fresh: list[Record]) -> None:
        latest = self.latest(partition, fresh, _meta)
        gone = sorted(key.decode().split("\x00", 1) for key, meta in latest.items() if meta is None)
        if gone:
            await conn.execute(
                "DELETE FROM session_meta WHERE (tenant, session_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                [g[0] for g in gone], [g[1] for g in gone],
            )
        metas = [meta for meta in latest.values() if meta is not None]
        if metas:
            await upsert_session_meta(conn, metas, partition)

    async def sweep(self) -> int:
        """Tombstone the metadata of sessions that have ended (no live task) and aged past the lifetime."""
        owned = sorted(self._next)
        if not owned:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention.tasks_seconds)
        rows = await self._pool.fetch(
            "SELECT m.tenant, m.session_id FROM session_meta m WHERE m.partition = ANY($1) AND m.updated_at <= $2"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.tenant = m.tenant AND s.session_id = m.session_id)"
            " LIMIT $3",
            owned, cutoff, SWEEP_BATCH,
        )
        sends = [await self._producer.send(self._topic, None, key=session_key(r["tenant"], r["session_id"]))
                 for r in rows]
        await asyncio.gather(*sends)
        return len(rows)


