"""Sessions: the tasks a conversation groups, what the sessions routes call, free of HTTP.

A session exists while its tenant has live tasks naming it (the query store's ``sessions``
table, kept from the task-state topic). A title and a deletion are the client's, kept on the
compacted sessions topic (``SessionMeta``) and indexed into the store like the task states;
this pod also writes them to the store at once, so its next read sees them. A deleted session
answers as an unknown one everywhere; its tasks stay reachable by their ids.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from agentwire.ingest.render import rfc3339
from agentwire.ingest.tasks import TaskService
from agentwire.kafka import partition_for
from agentwire.schema import SessionMeta, TaskState, Topics, encode, session_key, utcnow
from agentwire.store import SessionStats, SessionSummary, TaskStore

HISTORY_LIMIT = 1000  # tasks one history answer lists (oldest first)
PAGE = 100
HIDDEN_IN_TURNS = frozenset({"LLM_PARTIAL"})  # as Shannon's session events
MAX_TURN_EVENTS = 5000  # events one turns page may hold (413 beyond: ask for fewer turns)


class SessionError(Exception):
    """Base of this module's errors."""


class TooManyEvents(SessionError):
    """A turns page would hold more than MAX_TURN_EVENTS events."""


class SessionService:
    def __init__(self, tasks: TaskService, store: TaskStore, producer: AIOKafkaProducer, topics: Topics,
                 *, partitions: int) -> None:
        self._tasks = tasks
        self._store = store
        self._producer = producer
        self._topics = topics
        self._partitions = partitions

    async def find(self, tenant: str, session_id: str) -> SessionSummary | None:
        return await self._store.get_session(tenant, session_id)

    async def page(self, tenant: str, *, limit: int, offset: int,
                   cursor: str | None) -> tuple[list[dict[str, Any]], int, str | None]:
        found = await self._store.list_sessions(tenant, limit=limit, offset=offset, cursor=cursor)
        stats = await self._store.session_stats(tenant, [s.session_id for s in found.sessions])
        rows = [summary(tenant, s, stats.get(s.session_id)) for s in found.sessions]
        return rows, found.total_count, found.next_cursor

    async def details(self, tenant: str, session: SessionSummary) -> dict[str, Any]:
        stats = (await self._store.session_stats(tenant, [session.session_id])).get(session.session_id)
        row = summary(tenant, session, stats)
        return {**row, "cost_usd": row["total_cost_usd"], "research_strategy": None}

    async def tasks(self, tenant: str, session_id: str, *, limit: int = HISTORY_LIMIT) -> tuple[list[TaskState], int]:
        """The session's tasks, oldest first (a conversation's turns in order), and how many it has."""
        states: list[TaskState] = []
        total = 0
        cursor: str | None = None
        while len(states) < limit:
            page = await self._store.list_tasks(tenant, session_id=session_id, oldest_first=True,
                                                limit=min(PAGE, limit - len(states)), cursor=cursor)
            total = page.total_count
            states.extend(page.tasks)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return states, total

    async def turns(self, tenant: str, session_id: str, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of turns: each task of the session with its events (no LLM_PARTIAL)."""
        page = await self._store.list_tasks(tenant, session_id=session_id, oldest_first=True, limit=limit,
                                            offset=offset)
        out: list[dict[str, Any]] = []
        held = 0
        for number, state in enumerate(page.tasks, start=offset + 1):
            events = [e for e in await self._tasks.history(state) if e["type"] not in HIDDEN_IN_TURNS]
            held += len(events)
            if held > MAX_TURN_EVENTS:
                raise TooManyEvents(f"these turns hold more than {MAX_TURN_EVENTS} events; ask for fewer turns")
            out.append(turn(number, state, events))
        return out, page.total_count

    async def rename(self, tenant: str, session: SessionSummary, title: str) -> SessionMeta:
        return await self._write(SessionMeta(tenant=tenant, session_id=session.session_id, title=title))

    async def delete(self, tenant: str, session: SessionSummary) -> SessionMeta:
        return await self._write(SessionMeta(tenant=tenant, session_id=session.session_id, title=session.title,
                                             deleted_at=utcnow()))

    async def _write(self, meta: SessionMeta) -> SessionMeta:
        key = session_key(meta.tenant, meta.session_id)
        await self._producer.send_and_wait(self._topics.sessions, encode(meta), key=key)
        await self._store.put_session_meta(meta, partition_for(key, self._partitions))
        return meta


def summary(tenant: str, session: SessionSummary, stats: SessionStats | None) -> dict[str, Any]:
    """A session as the SDK's SessionSummary (and Session) read it; the tenant stands for the user."""
    tasks = session.task_count
    cost = stats.cost_usd if stats else 0.0
    done = (stats.succeeded + stats.failed) if stats else 0
    updated = max(session.last_task_at, session.meta_updated_at or session.last_task_at)
    return {
        "session_id": session.session_id,
        "user_id": tenant,
        "title": session.title,
        "context": {"title": session.title} if session.title else {},
        "task_count": tasks,
        "tokens_used": stats.tokens if stats else 0,
        "total_cost_usd": cost,
        "average_cost_per_task": round(cost / tasks, 8) if tasks else 0.0,
        "successful_tasks": stats.succeeded if stats else 0,
        "failed_tasks": stats.failed if stats else 0,
        "success_rate": round(stats.succeeded / done, 4) if stats and done else 0.0,
        "is_active": bool(stats and stats.running),
        "latest_task_query": stats.latest_query if stats else None,
        "latest_task_status": stats.latest_status if stats else None,
        "first_task_mode": stats.first_mode if stats else None,
        "is_research_session": False,
        "created_at": rfc3339(session.first_task_at),
        "updated_at": rfc3339(updated),
        "last_activity_at": rfc3339(stats.last_activity if stats else session.last_task_at),
    }


def history_item(state: TaskState) -> dict[str, Any]:
    started = state.task.created_at
    ended = state.completed_at
    return {
        "task_id": state.workflow_id,
        "workflow_id": state.workflow_id,
        "query": state.task.query,
        "status": state.status.value,
        "mode": state.task.mode,
        "result": state.result,
        "error_message": state.error,
        "total_tokens": state.usage.total_tokens,
        "total_cost_usd": state.usage.estimated_cost,
        "duration_ms": int((ended - started).total_seconds() * 1000) if ended else None,
        "started_at": rfc3339(started),
        "completed_at": rfc3339(ended),
    }


def turn(number: int, state: TaskState, events: list[dict[str, Any]]) -> dict[str, Any]:
    started, ended = state.task.created_at, state.completed_at or state.updated_at
    final = state.result or next((e.get("message") for e in events if e["type"] == "LLM_OUTPUT"), None)
    return {
        "turn": number,
        "task_id": state.workflow_id,
        "user_query": state.task.query,
        "final_output": final,
        "timestamp": rfc3339(started),
        "status": state.status.value,
        "events": events,
        "metadata": {
            "tokens_used": state.usage.total_tokens,
            "execution_time_ms": max(int((ended - started).total_seconds() * 1000), 0),
            "agents_involved": sorted({str(e["agent_id"]) for e in events if e.get("agent_id")}),
        },
    }
