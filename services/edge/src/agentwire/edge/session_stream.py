"""One stream for a whole session: every workflow of it, history then live, resumable.

A session's workflows are spread over partitions. Each partition the session touches is followed
from the first event of its first workflow (or from the resume point), and the session's events of
that partition are delivered **in offset order**, so one position per partition says exactly what
was delivered. The stream's SSE ``id`` is that cursor, ``<partition>-<offset>`` pairs joined by
``.`` (``3-1042.7-88``): resuming with it (``Last-Event-ID`` or ``last_event_id``) continues each
partition strictly after its position. A session in one partition has ids shaped like a workflow
stream's.

Which records belong to the session: a workflow's first task-state record (written when it was
submitted) precedes its first event, so a key the follower has not classified yet is looked up in
the query store after waiting for the store to index that partition: the answer cannot come too
late. Workflows in partitions the session did not touch yet are found by asking the store every
``poll_s``. Each followed partition has a Kafka consumer of its own (a session stream costs one
consumer per partition it spans, and reads every record of those partitions from its start).

A session stream never ends by itself: each workflow's STREAM_END is delivered as the event
``STREAM_END`` (not ``done``), and the stream stays open for the session's next tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from agentwire.edge.delivery import Delivery
from agentwire.kafka import parse_position_id
from agentwire.kafka.history import EventLog
from agentwire.schema import TaskState, dumps
from agentwire.service.http import ApiError
from agentwire.store import TaskStore

log = logging.getLogger(__name__)

Send = Callable[[list[tuple[Delivery, str]]], Awaitable[None]]
MAX_MEMBERS = 10_000  # workflows one session stream follows
MAX_FOREIGN = 50_000  # other sessions' workflows remembered as such, per partition follower (LRU)


def parse_cursor(value: str | None) -> dict[int, int]:
    """A session cursor ``p-o.p-o…`` as {partition: offset}; empty or ``0`` means from the start."""
    if value is None or value.strip() in ("", "0"):
        return {}
    cursor: dict[int, int] = {}
    for part in value.strip().split("."):
        position = parse_position_id(part)
        if position is None:
            raise ApiError(400, "malformed last_event_id: expected <partition>-<offset> pairs joined by '.'")
        cursor[position[0]] = position[1]
    return cursor


def format_cursor(cursor: dict[int, int]) -> str:
    return ".".join(f"{p}-{o}" for p, o in sorted(cursor.items()))


def sse_frame(item: Delivery, cursor: str) -> bytes:
    """The event's SSE frame with the session cursor as its id (STREAM_END keeps its name here)."""
    if item.type == "STREAM_END":
        body = b"event: STREAM_END\ndata: " + dumps(item.public()) + b"\n\n"
    else:
        body = item.sse.split(b"\n", 1)[1]
    return b"id: " + cursor.encode() + b"\n" + body


def ws_message(item: Delivery, cursor: str) -> str:
    return dumps({**item.public(), "cursor": cursor}).decode()


class SessionStream:
    def __init__(self, log_: EventLog, store: TaskStore, tenant: str, session_id: str, resume: dict[int, int],
                 types: frozenset[str] | None, *, poll_s: float = 1.0, lookup_timeout_s: float = 2.0) -> None:
        self._log = log_
        self._store = store
        self._tenant = tenant
        self._session_id = session_id
        self._cursor = dict(resume)
        self._resumed = set(resume)
        self._types = types
        self._poll_s = poll_s
        self._lookup_timeout_s = lookup_timeout_s
        self._members: dict[str, TaskState] = {}
        self._followers: dict[int, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()  # one write at a time to the client, and one cursor

    async def run(self, send: Send) -> None:
        """Follow the session until the client leaves (the caller cancels, or a write fails)."""
        try:
            while True:
                await self._discover(send)
                done = [t for t in self._followers.values() if t.done()]
                for task in done:
                    task.result()  # a follower's failure ends the stream (the client reconnects and resumes)
                await asyncio.sleep(self._poll_s)
        finally:
            for task in self._followers.values():
                task.cancel()
            for task in self._followers.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _discover(self, send: Send) -> None:
        """Add the session's workflows the store knows; follow the partitions they bring."""
        cursor: str | None = None
        while len(self._members) < MAX_MEMBERS:
            page = await self._store.list_tasks(self._tenant, session_id=self._session_id, oldest_first=True,
                                                limit=100, cursor=cursor)
            for state in page.tasks:
                self._members.setdefault(state.workflow_id, state)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        by_partition: dict[int, list[TaskState]] = {}
        for state in self._members.values():
            by_partition.setdefault(self._log.partition_of(state.workflow_id), []).append(state)
        for partition, states in by_partition.items():
            if partition not in self._followers:
                self._followers[partition] = asyncio.create_task(
                    self._follow(partition, states, send), name=f"session-{self._session_id}-{partition}")

    async def _follow(self, partition: int, states: list[TaskState], send: Send) -> None:
        if partition in self._resumed:
            start = self._cursor[partition] + 1
        else:
            start = min([await self._log.start_offset(s) for s in states])
        last_seq: dict[str, int] = {}
        foreign: OrderedDict[bytes, None] = OrderedDict()
        async with contextlib.aclosing(self._log.follow_partition(partition, start)) as batches:
            async for records in batches:
                unknown = {r.key for r in records if r.key is not None
                           and r.key.decode() not in self._members and r.key not in foreign}
                if unknown:
                    await self._classify(partition, unknown, foreign)
                out: list[Delivery] = []
                for record in records:
                    workflow_id = record.key.decode() if record.key else ""
                    if workflow_id not in self._members:
                        continue
                    item = Delivery.of(record)
                    if item is None:
                        continue
                    seen = last_seq.get(workflow_id)
                    if seen is not None and item.seq != seen + 1:
                        continue  # a duplicate the processor wrote after a crash
                    last_seq[workflow_id] = item.seq
                    out.append(item)
                if out:
                    await self._deliver(partition, out, send)

    async def _classify(self, partition: int, keys: set[bytes], foreign: OrderedDict[bytes, None]) -> None:
        """Whether unknown workflows of the partition belong to the session (asked once per workflow)."""
        await self._store.catch_up(self._lookup_timeout_s, [partition])
        for key in keys:
            state = await self._store.get(key.decode())
            if state is not None and state.tenant == self._tenant and state.task.session_id == self._session_id:
                if len(self._members) < MAX_MEMBERS:
                    self._members[state.workflow_id] = state
            else:
                foreign[key] = None
                if len(foreign) > MAX_FOREIGN:
                    foreign.popitem(last=False)

    async def _deliver(self, partition: int, items: list[Delivery], send: Send) -> None:
        async with self._lock:
            batch: list[tuple[Delivery, str]] = []
            for item in items:
                self._cursor[partition] = item.offset
                if self._types is None or item.type in self._types:
                    batch.append((item, format_cursor(self._cursor)))
            if batch:
                await send(batch)
