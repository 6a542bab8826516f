"""An SSE client that reads one workflow from start to ``done``, resuming with Last-Event-ID on drops.

It tallies what a user would notice: every seq must arrive once, in order, 1..N, and the
stream must end with ``done``. Forced disconnects (the client closing the connection itself
mid-stream) and involuntary drops (an edge killed, a read timeout) both resume from the last
``id:`` seen, on the other edge.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson

TERMINAL_TYPES = {"WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"}
SSE_TO_TYPE = {"workflow.cancelled": "WORKFLOW_CANCELLED", "error": "ERROR_OCCURRED",
               "thread.message.delta": "LLM_PARTIAL", "thread.message.completed": "LLM_OUTPUT"}


@dataclass
class Tally:
    """What one client saw of one workflow."""

    workflow_id: str
    seqs: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    ended: bool = False
    duplicated: int = 0
    gaps: int = 0
    forced: int = 0
    drops: int = 0
    not_found: int = 0
    clean_close_without_done: int = 0
    connect_errors: int = 0
    errors: list[str] = field(default_factory=list)
    ids: dict[int, str] = field(default_factory=dict)  # seq -> stream_id first seen
    dup_details: list[dict[str, object]] = field(default_factory=list)
    frames_on_connection: int = 0
    edge: str = ""

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def ok(self) -> bool:
        """seq 1..N once, in order, a terminal event right before ``done``."""
        return (self.ended and self.seqs == list(range(1, len(self.seqs) + 1)) and bool(self.types)
                and self.types[0] == "WORKFLOW_STARTED" and self.types[-1] in TERMINAL_TYPES
                and sum(t in TERMINAL_TYPES for t in self.types) == 1)


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""


async def frames(lines: AsyncIterator[str]) -> AsyncIterator[Frame]:
    """SSE frames of a line stream (comments skipped)."""
    frame = Frame()
    async for line in lines:
        if line == "":
            if frame.data or frame.event:
                yield frame
            frame = Frame()
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line.startswith("data:"):
            frame.data += line[5:].strip()


@dataclass
class Reader:
    """Reads one workflow to its end across edges; ``disconnect_p`` forces drops mid-stream."""

    http: httpx.AsyncClient
    edges: list[str]
    tally: Tally
    first_edge: int = 0
    disconnect_p: float = 0.0
    budget: list[int] = field(default_factory=lambda: [0])  # shared remaining forced disconnects
    rng: random.Random = field(default_factory=random.Random)
    last_id: str | None = None

    async def run(self, deadline_s: float) -> Tally:
        deadline = time.monotonic() + deadline_s
        attempt = self.first_edge
        while not self.tally.ended and time.monotonic() < deadline:
            edge = self.edges[attempt % len(self.edges)]
            attempt += 1
            try:
                forced = await self._once(edge)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if isinstance(exc, httpx.ConnectError):
                    self.tally.connect_errors += 1
                else:
                    self.tally.drops += 1
                await asyncio.sleep(0.2)
                continue
            if forced:
                self.tally.forced += 1
        if not self.tally.ended:
            self.tally.errors.append(f"no done before deadline; last seq {self.tally.last_seq}")
        return self.tally

    async def _once(self, edge: str) -> bool:
        """One connection; True when the client itself cut it (a forced disconnect)."""
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        params = {"workflow_id": self.tally.workflow_id}
        self.tally.frames_on_connection = 0
        self.tally.edge = edge
        async with self.http.stream("GET", f"{edge}/api/v1/stream/sse", params=params, headers=headers) as resp:
            resp.raise_for_status()
            async for frame in frames(resp.aiter_lines()):
                if frame.event == "done":
                    self.tally.ended = True
                    return False
                if frame.id is None:  # "Workflow not found" (no id): the edge does not know it yet
                    self.tally.not_found += 1
                    await asyncio.sleep(0.2)
                    return False
                if self._record(frame):
                    self.last_id = frame.id  # resume strictly after the last new event, whatever ends this
                if self.budget[0] > 0 and self.rng.random() < self.disconnect_p:
                    self.budget[0] -= 1
                    return True  # leaving the block closes the connection mid-stream
        self.tally.clean_close_without_done += 1
        return False

    def _record(self, frame: Frame) -> bool:
        """Tally one event; False for a duplicate."""
        event = orjson.loads(frame.data)
        seq = int(event["seq"])
        self.tally.frames_on_connection += 1
        if seq <= self.tally.last_seq:
            self.tally.duplicated += 1
            self.tally.dup_details.append({
                "workflow_id": self.tally.workflow_id, "seq": seq, "id": frame.id,
                "first_id": self.tally.ids.get(seq), "last_seq": self.tally.last_seq, "type": frame.event,
                "frame_on_connection": self.tally.frames_on_connection, "edge": self.tally.edge[-5:]})
            return False
        self.tally.ids[seq] = str(frame.id)
        if seq != self.tally.last_seq + 1:
            self.tally.gaps += seq - self.tally.last_seq - 1
            self.tally.errors.append(f"gap {self.tally.last_seq}->{seq} ({frame.id})")
        self.tally.seqs.append(seq)
        name = str(frame.event)
        self.tally.types.append(str(event.get("type") or SSE_TO_TYPE.get(name, name.upper().replace(".", "_"))))
        return True
