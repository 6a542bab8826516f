"""TaskStore: what the API reads (status, lists, sessions), from the store's index.

Reads see only live tasks: a row whose ``active_at`` is older than the tasks'
lifetime is invisible at once, before its tombstone has even been indexed.
Listing is tenant first and newest first (``created_at``, then ``workflow_id``),
with ``offset``/``limit`` for the Shannon SDK and an opaque keyset ``cursor``
for everything else (a cursor page costs the same at any depth).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from agentwire.kafka.partitioning import partition_for
from agentwire.schema import DecodeError, SessionMeta, TaskState, TaskStatus, decode
from agentwire.store.batching import Batcher
from agentwire.store.progress import IndexProgress
from agentwire.store.rows import TaskRow, task_row
from agentwire.store.sessions import (
    SESSION_COLUMNS,
    SESSION_ENDS,
    SESSION_TOTALS,
    SESSIONS_WITH_META,
    upsert_session_meta,
)

log = logging.getLogger(__name__)

# the single-task reads of a batch (the idempotency read of every submission with a key)
GET_MANY = "SELECT workflow_id, state FROM tasks WHERE workflow_id = ANY($1::text[]) AND active_at > $2"


class InvalidCursor(ValueError):
    """A cursor that this store did not hand out."""


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskState]
    total_count: int  # every task matching the filters, not only this page
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    task_count: int
    first_task_at: datetime
    last_task_at: datetime
    title: str | None = None  # set by the client (the sessions topic)
    meta_updated_at: datetime | None = None  # when the client last set something on it


@dataclass(frozen=True)
class SessionStats:
    tokens: int
    cost_usd: float
    succeeded: int
    failed: int
    running: int
    last_activity: datetime
    latest_query: str | None
    latest_status: str | None
    first_mode: str | None


@dataclass(frozen=True)
class SessionPage:
    sessions: list[SessionSummary]
    total_count: int
    next_cursor: str | None


class TaskStore:
    def __init__(self, pool: asyncpg.Pool, progress: IndexProgress, *, lifetime_s: float, partitions: int) -> None:
        self._pool = pool
        self._progress = progress
        self._lifetime = timedelta(seconds=lifetime_s)
        self._partitions = partitions
        self.ready = False
        # one statement for the concurrent single-task reads and submitted rows (store/batching.py)
        self._gets: Batcher[str, bytes | None] = Batcher(self._get_many)
        self._puts: Batcher[TaskRow, None] = Batcher(self._put_many)

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - self._lifetime

    # -- one task --------------------------------------------------------------------------------

    async def get(self, workflow_id: str) -> TaskState | None:
        """The task's latest state if the store has it and it is alive; never waits."""
        raw = await self._gets.call(workflow_id)
        return _state(raw) if raw is not None else None

    async def _get_many(self, workflow_ids: list[str]) -> list[bytes | None]:
        rows = await self._pool.fetch(GET_MANY, workflow_ids, self._cutoff())
        found = {row["workflow_id"]: row["state"] for row in rows}
        return [found.get(w) for w in workflow_ids]

    async def lookup(self, workflow_id: str, timeout: float) -> TaskState | None:  # noqa: ASYNC109 - bounded wait
        """The task's state; if absent, wait up to ``timeout`` for the index to reach what was written before."""
        partition = partition_for(workflow_id, self._partitions)
        indexed = self._progress.indexed(partition)  # known indexed (and committed) before the read below
        found = await self.get(workflow_id)
        if found is not None:
            return found
        if not await self.catch_up(timeout, [partition]):
            return None
        if self._progress.indexed(partition) <= indexed:
            return None  # nothing was indexed since the read: it saw all there is
        return await self.get(workflow_id)

    async def catch_up(self, timeout: float, partitions: list[int] | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the index holds every record written before the call; False if ``timeout`` ran out."""
        try:
            await asyncio.wait_for(self._progress.catch_up(partitions), timeout)
        except TimeoutError:
            return False
        return True

    async def put_submitted(self, state: TaskState, record: bytes) -> None:
        """Add a task its submitter has just written to the topic, without waiting for the indexer.

        Every pod then sees it at once, even while the indexers rebalance. ``DO NOTHING``: a row the
        indexer already wrote is as new or newer; the indexer applies this same record again later.
        """
        await self._puts.call(task_row(state.workflow_id.encode(), record))

    async def _put_many(self, batch: list[TaskRow]) -> list[None]:
        # the indexer's lock order (session rows are shared through triggers): no deadlock between them
        rows = sorted(batch, key=lambda r: (r.tenant, r.session_id, r.workflow_id))
        await self._pool.execute(
            "INSERT INTO tasks (workflow_id, tenant, session_id, status, created_at, updated_at, completed_at,"
            " active_at, partition, state, tokens, cost) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
            " $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[],"
            " $9::integer[], $10::bytea[], $11::bigint[], $12::float8[]) ON CONFLICT (workflow_id) DO NOTHING",
            [r.workflow_id for r in rows], [r.tenant for r in rows], [r.session_id for r in rows],
            [r.status for r in rows], [r.created_at for r in rows], [r.updated_at for r in rows],
            [r.completed_at for r in rows], [r.active_at for r in rows],
            [partition_for(r.workflow_id, self._partitions) for r in rows], [r.state for r in rows],
            [r.tokens for r in rows], [r.cost for r in rows],
        )
        return [None] * len(batch)

    # -- lists ---------------------------------------------------------------------------------

    async def list_tasks(
        self,
        tenant: str,
        *,
        status: TaskStatus | None = None,
        session_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
        oldest_first: bool = False,
    ) -> TaskPage:
        """One page of the tenant's live tasks, newest first unless ``oldest_first``."""
        where = ["tenant = $1", "active_at > $2"]
        args: list[Any] = [tenant, self._cutoff()]
        filters: list[str] = []
        if status is not None:
            args.append(status.value)
            filters.append(f"status = ${len(args)}")
        if session_id is not None:
            args.append(session_id)
            filters.append(f"session_id = ${len(args)}")
        where += filters
        total_sql = _total_sql(filters, by_status=status is not None, by_session=session_id is not None)
        if cursor is not None:
            created, workflow_id = _decode_cursor(cursor)
            args += [created, workflow_id]
            where.append(f"(created_at, workflow_id) {'>' if oldest_first else '<'} (${len(args) - 1}, ${len(args)})")
        order = "ASC" if oldest_first else "DESC"
        # One round trip: the count, and the page — its keys from an index-only scan (deep offsets
        # skip index entries, not rows), then only its rows. Fixed fragments; values are parameters.
        sql = (
            f"SELECT c.total, p.state, p.created_at, p.workflow_id FROM ({total_sql}) c LEFT JOIN LATERAL"  # noqa: S608
            " (SELECT t.state, t.created_at, t.workflow_id FROM tasks t JOIN"
            f" (SELECT workflow_id FROM tasks WHERE {' AND '.join(where)}"
            f" ORDER BY created_at {order}, workflow_id {order} LIMIT {int(limit)} OFFSET {int(offset)})"
            f" page USING (workflow_id)) p ON true ORDER BY p.created_at {order}, p.workflow_id {order}"
        )
        rows = await self._pool.fetch(sql, *args)
        total = rows[0]["total"] if rows else 0
        rows = [r for r in rows if r["state"] is not None]
        tasks = [s for s in (_state(r["state"]) for r in rows) if s is not None]
        next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["workflow_id"]) if len(rows) == limit else None
        return TaskPage(tasks, int(total), next_cursor)

    async def list_sessions(
        self, tenant: str, *, limit: int = 20, offset: int = 0, cursor: str | None = None
    ) -> SessionPage:
        """One page of the tenant's sessions that still have live tasks and were not deleted, most recent first."""
        where = ["s.tenant = $1", "s.last_active_at > $2", "m.deleted_at IS NULL"]
        args: list[Any] = [tenant, self._cutoff()]
        counted = " AND ".join(where)
        if cursor is not None:
            last, session_id = _decode_cursor(cursor)
            args += [last, session_id]
            where.append("(s.last_task_at, s.session_id) < ($3, $4)")
        sql = (  # fixed fragments; every value is a parameter
            f"SELECT {SESSION_COLUMNS} FROM {SESSIONS_WITH_META}"  # noqa: S608
            f" WHERE {' AND '.join(where)} ORDER BY s.last_task_at DESC, s.session_id DESC"
            f" LIMIT {int(limit)} OFFSET {int(offset)}"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *args)
            count_sql = f"SELECT count(*) FROM {SESSIONS_WITH_META} WHERE {counted}"  # noqa: S608 - as above
            total = await conn.fetchval(count_sql, *args[:2])
        sessions = [_session(r) for r in rows]
        next_cursor = _encode_cursor(rows[-1]["last_task_at"], rows[-1]["session_id"]) if len(rows) == limit else None
        return SessionPage(sessions, int(total), next_cursor)

    async def get_session(self, tenant: str, session_id: str) -> SessionSummary | None:
        """The session if the tenant has live tasks in it and did not delete it (else None, as for an unknown one)."""
        row = await self._pool.fetchrow(
            f"SELECT {SESSION_COLUMNS} FROM {SESSIONS_WITH_META}"  # noqa: S608 - fixed fragments
            " WHERE s.tenant = $1 AND s.session_id = $2 AND s.last_active_at > $3 AND m.deleted_at IS NULL",
            tenant, session_id, self._cutoff(),
        )
        return _session(row) if row is not None else None

    async def put_session_meta(self, meta: SessionMeta, partition: int) -> None:
        """Apply a session's metadata this pod has just written to the sessions topic (read-your-writes).

        The newest ``updated_at`` wins, here as in the indexer, which applies the same record later.
        """
        async with self._pool.acquire() as conn:
            await upsert_session_meta(conn, [meta], partition)

    async def session_stats(self, tenant: str, session_ids: list[str]) -> dict[str, SessionStats]:
        """Aggregates over the live tasks of each session (tokens, cost, outcomes, latest task)."""
        if not session_ids:
            return {}
        async with self._pool.acquire() as conn:
            totals = await conn.fetch(SESSION_TOTALS, tenant, session_ids, self._cutoff())
            ends = await conn.fetch(SESSION_ENDS, tenant, session_ids, self._cutoff())
        latest: dict[str, TaskState] = {}
        first: dict[str, TaskState] = {}
        for row in ends:
            state = _state(row["state"])
            if state is not None:
                (latest if row["latest"] else first)[row["session_id"]] = state
        out: dict[str, SessionStats] = {}
        for row in totals:
            sid = row["session_id"]
            newest, oldest = latest.get(sid), first.get(sid) or latest.get(sid)
            out[sid] = SessionStats(
                tokens=int(row["tokens"] or 0), cost_usd=float(row["cost"] or 0.0), succeeded=row["succeeded"],
                failed=row["failed"], running=row["running"], last_activity=row["last_activity"],
                latest_query=newest.task.query if newest else None,
                latest_status=newest.status.value if newest else None,
                first_mode=oldest.task.mode if oldest else None,
            )
        return out


def _session(row: asyncpg.Record) -> SessionSummary:
    return SessionSummary(row["session_id"], row["task_count"], row["first_task_at"], row["last_task_at"],
                          row["title"], row["meta_updated_at"])


def _total_sql(filters: list[str], *, by_status: bool, by_session: bool) -> str:
    """``SELECT … AS total``: every matching live task, without counting them one by one.

    The tenant's per-status counters (``task_counts``) or the session's ``task_count`` give all
    rows; the few rows past their lifetime whose tombstone is not indexed yet are counted from the
    ``(tenant, active_at)`` index and taken off. A session and a status together count the
    session's rows. ``$1`` is the tenant, ``$2`` the lifetime's cutoff.
    """
    extra = "".join(f" AND {f}" for f in filters)
    expired = f"(SELECT count(*) FROM tasks WHERE tenant = $1 AND active_at <= $2{extra})"  # noqa: S608
    if by_session and by_status:
        return f"SELECT count(*) AS total FROM tasks WHERE tenant = $1 AND active_at > $2{extra}"  # noqa: S608
    if by_session:
        session = filters[-1]
        stored = f"(SELECT coalesce(max(task_count), 0) FROM sessions WHERE tenant = $1 AND {session})"  # noqa: S608
    else:
        stored = f"(SELECT coalesce(sum(n), 0) FROM task_counts WHERE tenant = $1{extra})"  # noqa: S608
    return f"SELECT {stored} - {expired} AS total"


def _state(raw: bytes) -> TaskState | None:
    try:
        return decode(TaskState, raw)
    except DecodeError as exc:  # the indexer checked the indexed fields; the rest may still be wrong
        log.warning("store holds an undecodable task state: %s", exc)
        return None


def _encode_cursor(moment: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([moment.isoformat(), key])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    with contextlib.suppress(ValueError, TypeError, orjson.JSONDecodeError):
        moment, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(key, str):
            return datetime.fromisoformat(moment), key
    raise InvalidCursor("cursor is not one this API returned")
