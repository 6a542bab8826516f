"""Hostile clients: each gets a clear 4xx or a bounded close, and other clients are unaffected.

Covered here: an oversized body, a JSON bomb (deep nesting), and a WebSocket client that sends
frames. After each, the gateway's memory has not
grown past a bound and a normal task still streams to its end.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from tests.integration.flows import check_stream, submit
from tests.support.sse import read_stream
from tests.support.stack import Stack

RSS_BOUND_KB = 64 * 1024  # growth a hostile burst may cause at most (allocator slack included)


def rss_kb(stack: Stack) -> int:
    process = stack.services["gateway"].process
    assert process is not None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def others_unaffected(stack: Stack) -> None:
    frames, _ = read_stream(stack.base_url, {"workflow_id": submit(stack, "simple")}, timeout=60)
    check_stream(frames)


def test_oversized_body_is_413(stack: Stack) -> None:
    before = rss_kb(stack)
    body = b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = httpx.post(f"{stack.base_url}/api/v1/tasks", content=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413 and "error" in response.json()
    assert rss_kb(stack) - before < RSS_BOUND_KB
    others_unaffected(stack)


def test_json_bomb_is_400(stack: Stack) -> None:
    before = rss_kb(stack)
    for bomb in (b"[" * 200_000 + b"]" * 200_000, b'{"query": "q", "context": ' + b'{"a":' * 50_000 + b"1"
                 + b"}" * 50_000 + b"}"):
        response = httpx.post(f"{stack.base_url}/api/v1/tasks", content=bomb,
                              headers={"Content-Type": "application/json"}, timeout=30)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
    assert rss_kb(stack) - before < RSS_BOUND_KB
    others_unaffected(stack)


def test_websocket_client_sending_frames_is_ignored_or_closed(stack: Stack) -> None:
    workflow_id = submit(stack, "simple", speed=4)
    url = stack.base_url.replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={workflow_id}"

    async def chatty() -> tuple[list[dict[str, object]], int | None]:
        received: list[dict[str, object]] = []
        async with websockets.connect(url, max_size=None) as ws:
            for i in range(500):
                await ws.send(json.dumps({"noise": i}))
            await ws.send(b"\x00" * 100_000)
            try:
                async for message in ws:
                    received.append(json.loads(message))
            except websockets.ConnectionClosed:
                pass
            return received, ws.close_code

    received, code = asyncio.run(asyncio.wait_for(chatty(), 60))
    if code == 1000:  # frames ignored: the stream ran to its end
        assert received[-1]["type"] == "STREAM_END"
        assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
    else:  # or a bounded close for a misbehaving client
        assert code in (1003, 1008, 1009), code
    others_unaffected(stack)
