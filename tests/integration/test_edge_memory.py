"""Memory per held SSE client: what the edge keeps for each caught-up client stays lean.

tests/bench/edge.py measures RSS with 10,000 clients (docs/performance.md, "Memory per held SSE
client"); this test guards the share of it that is Python objects, without timing anything: the edge
runs in this process with tracemalloc on, a few hundred clients connect on raw sockets from a thread
(their allocations are left out by file), and the traced growth is taken once every client is caught
up (the live tail writes to each directly). Real Kafka and PostgreSQL, like the other integration tests.

What one held client costs here is ≈ 12.8 KB on asyncio's loop (the services run uvloop): aiohttp's
connection, request, response and handler tasks ≈ 8 KB, the rest the session, its subscription and
the handler's coroutine chain. Before the work on issue 11 it was ≈ 16.2 KB: a per-client asyncio.Event
and keepalive timeout, three middleware frames, more coroutine frames. The limit sits between the two,
≈ 1.2 KB above today's figure (a per-client Event and timeout alone were 1.6 KB).
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from pathlib import Path

import pytest
from aiohttp import web

from agentwire.edge.app import create_app, is_ready
from agentwire.edge.keys import HUB
from agentwire.kafka import ensure_topics
from agentwire.service.lifecycle import serve
from agentwire.service.settings import load_settings
from tests.bench.feed import Feed
from tests.support import postgres
from tests.support.stack import Stack, free_port
from tests.support.wait import eventually_async

CLIENTS = 300
LIMIT_BYTES = 14_000  # traced growth per held client (≈ 12.8 KB now, ≈ 16.2 KB before; see above)
FRAMES = 16  # deep enough that every client-side allocation has this file in its traceback


def connect(port: int, workflow_id: str) -> socket.socket:
    """An SSE client on a blocking socket: sends its request, reads the response head, then only holds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /api/v1/stream/sse?workflow_id={workflow_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


# the services keep per-request values under string keys (request["trace_id"], request["ws"]), which aiohttp
# answers with this warning; in their own processes it is only logged
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
async def test_memory_per_held_sse_client(kafka_bootstrap: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack(kafka_bootstrap, tmp_path, extra_env={"GATEWAY_SKIP_AUTH": "1"})
    for key, value in stack.env().items():
        if key.startswith("AGENTWIRE_") or key in ("GATEWAY_SKIP_AUTH", "ENVIRONMENT"):
            monkeypatch.setenv(key, value)
    settings = load_settings()
    await ensure_topics(settings.kafka)
    app = create_app(settings)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, "127.0.0.1", port, stop, handler_cancellation=True))
    held: list[socket.socket] = []
    try:
        await eventually_async(lambda: _ready(app), 60, "edge ready")  # Kafka, the live tail and the store
        async with Feed(kafka_bootstrap, stack.prefix) as feed:
            workflow_id = await feed.declare()
            await feed.emit(workflow_id, "WORKFLOW_STARTED", wait=True)
            # one client first: what is made once (the partition's assignment, caches, pools) is not per client
            held.append(await asyncio.to_thread(connect, port, workflow_id))
            await eventually_async(lambda: _caught_up(app, 1), 60, "the first client caught up")
            tracemalloc.start(FRAMES)
            try:
                before = tracemalloc.take_snapshot()
                held += await asyncio.to_thread(lambda: [connect(port, workflow_id) for _ in range(CLIENTS)])
                await eventually_async(lambda: _caught_up(app, CLIENTS + 1), 120, f"{CLIENTS} clients caught up")
                after = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
        mine = [tracemalloc.Filter(False, __file__, all_frames=True), tracemalloc.Filter(False, tracemalloc.__file__)]
        growth = sum(stat.size_diff for stat in after.filter_traces(mine).compare_to(before.filter_traces(mine),
                                                                                       "filename"))
        per_client = growth / CLIENTS
        assert per_client < LIMIT_BYTES, f"{per_client:.0f} bytes traced per held client (limit {LIMIT_BYTES})"
    finally:
        for sock in held:
            sock.close()
        stop.set()
        await server
        stack.delete_topics()
        postgres.drop_database(stack.prefix)


async def _ready(app: web.Application) -> bool:
    return is_ready(app)


async def _caught_up(app: web.Application, clients: int) -> bool:
    return app[HUB].direct_clients() >= clients
