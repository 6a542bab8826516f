"""The live tail's direct writes (edge/wire.py) on real sockets: what they rely on, checked.

- HTTP/1.1 SSE is chunked and every live event arrives as whole chunks a strict client accepts;
- HTTP/1.0 SSE is written as plain frames and ends with the connection;
- a WebSocket client that offers compression gets none, and every live frame is a whole text frame;
- a WebSocket closed by the client mid-stream ends its session without writing past the close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest
import websockets

from tests.bench.feed import Feed
from tests.support.stack import Stack
from tests.support.wait import eventually_async

LIVE = 300  # live events per stream (after the client is connected)


@pytest.fixture(scope="module")
def edge(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("edge-wire")
    stack = Stack(kafka_bootstrap, workdir, extra_env={"GATEWAY_SKIP_AUTH": "1"})
    with stack.serving("edge", "agentwire-edge"):
        yield stack


def base(stack: Stack) -> str:
    return stack.services["edge"].health_url.removesuffix("/health")


async def start_live(stack: Stack, feed: Feed) -> str:
    workflow_id = await feed.declare()
    await feed.emit(workflow_id, "WORKFLOW_STARTED", wait=True)
    return workflow_id


async def feed_live(feed: Feed, workflow_id: str, first: asyncio.Event, stack: Stack | None = None,
                    direct_before: float = 0.0) -> None:
    """The live events once the client saw the first; with ``stack``, once the tail writes to it directly.

    A client that has seen its first event may still be catching up, and a fast feed can then hand it
    every event through its session's queue: no direct write at all. Waiting for the hand-over makes the
    live events go through the direct writer these tests are about.
    """
    await asyncio.wait_for(first.wait(), 30)
    if stack is not None:
        await eventually_async(lambda: _more_direct_clients(stack, direct_before), what="direct hand-over")
    for i in range(LIVE):
        await feed.emit(workflow_id, message=f"live {i}")
    await feed.finish(workflow_id)


async def _more_direct_clients(stack: Stack, before: float) -> bool:
    return await metric(stack, "agentwire_edge_direct_clients") > before


async def metric(stack: Stack, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{base(stack)}/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


async def test_http11_sse_live_events_arrive_as_whole_chunks(edge: Stack) -> None:
    direct_before = await metric(edge, "agentwire_edge_live_writes_total")
    clients_before = await metric(edge, "agentwire_edge_direct_clients")
    async with Feed(edge.bootstrap, edge.prefix) as feed:
        workflow_id = await start_live(edge, feed)
        first = asyncio.Event()
        seqs: list[int] = []
        writer = asyncio.create_task(feed_live(feed, workflow_id, first, edge, clients_before))
        async with httpx.AsyncClient(timeout=60) as client, client.stream(
                "GET", f"{base(edge)}/api/v1/stream/sse", params={"workflow_id": workflow_id}) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            async for line in response.aiter_lines():  # httpx decodes the chunking strictly
                if line.startswith("data: {"):
                    seqs.append(orjson.loads(line[6:])["seq"])
                    first.set()
        await writer
    assert seqs == list(range(1, LIVE + 3))  # WORKFLOW_STARTED, the live events, WORKFLOW_COMPLETED
    assert await metric(edge, "agentwire_edge_live_writes_total") > direct_before  # the tail wrote directly


async def test_http10_sse_is_written_plain_and_ends_with_the_connection(edge: Stack) -> None:
    host, port = "127.0.0.1", int(base(edge).rsplit(":", 1)[1])
    async with Feed(edge.bootstrap, edge.prefix) as feed:
        workflow_id = await start_live(edge, feed)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /api/v1/stream/sse?workflow_id={workflow_id} HTTP/1.0\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"chunked" not in head.lower()
        await reader.readuntil(b"WORKFLOW_STARTED")
        first = asyncio.Event()
        first.set()
        await feed_live(feed, workflow_id, first)
        body = await asyncio.wait_for(reader.read(), 60)  # to the end: the server closes
        writer.close()
    frames = [f for f in body.split(b"\n\n") if f.startswith(b"id: ")]
    assert frames[-1].endswith(b"data: [DONE]")
    seqs = [orjson.loads(f.split(b"data: ", 1)[1])["seq"] for f in frames[:-1] if b"data: {" in f]
    assert seqs[-1] == LIVE + 2 and seqs == list(range(seqs[0], LIVE + 3))


async def test_ws_offered_compression_gets_whole_uncompressed_text_frames(edge: Stack) -> None:
    async with Feed(edge.bootstrap, edge.prefix) as feed:
        workflow_id = await start_live(edge, feed)
        first = asyncio.Event()
        direct_before = await metric(edge, "agentwire_edge_live_writes_total")
        clients_before = await metric(edge, "agentwire_edge_direct_clients")
        writer = asyncio.create_task(feed_live(feed, workflow_id, first, edge, clients_before))
        url = base(edge).replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={workflow_id}"
        seqs = []
        async with websockets.connect(url, compression="deflate") as ws:  # the client offers permessage-deflate
            assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
            async for message in ws:  # websockets rejects any malformed or interleaved frame
                assert isinstance(message, str)
                seqs.append(orjson.loads(message)["seq"])
                first.set()
            assert ws.close_code == 1000
        await writer
    assert await metric(edge, "agentwire_edge_live_writes_total") > direct_before
    assert seqs == list(range(1, LIVE + 4))  # ... and STREAM_END, then a clean close


async def test_a_ws_client_that_closes_mid_stream_ends_its_session(edge: Stack) -> None:
    async with Feed(edge.bootstrap, edge.prefix) as feed:
        workflow_id = await start_live(edge, feed)
        url = base(edge).replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={workflow_id}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.receive()  # WORKFLOW_STARTED
            for i in range(20):
                await feed.emit(workflow_id, message=f"live {i}", wait=True)
            await ws.receive()
            await ws.close()
        for i in range(50):  # the tail keeps dispatching to the workflow after the client left
            await feed.emit(workflow_id, message=f"after {i}", wait=True)

    async def no_open_ws() -> bool:
        return await metric(edge, 'agentwire_edge_connections_open{protocol="ws"}') == 0

    await eventually_async(no_open_ws, 30, "the WebSocket session ended")
    log = edge.services["edge"].tail(5000)
    assert "Traceback" not in log and "Cannot write to closing transport" not in log
