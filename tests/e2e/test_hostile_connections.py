"""Hostile clients at the connection level, against a gateway of their own with a short idle timeout.

Each case gets a clear 4xx or a bounded close from aiohttp's own limits (``http.idle_timeout_s`` is
aiohttp's ``keepalive_timeout``; request line and header limits are aiohttp's defaults), the
gateway's memory stays within a stated bound, and a normal client is served meanwhile:

- slowloris: a request head sent a header at a time, never finished, is cut off at the idle timeout;
  too many headers or a header line past 8,190 bytes is a 400;
- 10,000 idle connections are held, cost a bounded amount each, are closed at the idle timeout, and
  a stream runs to its end while they are open;
- a huge ``types`` filter: past the request line limit a 4xx; a long one within it streams normally;
- a flood of stream tokens (issued, and forged ones presented): tokens are stateless (an HMAC), so
  memory does not grow, forged ones get 401 and a genuine one still opens its stream.

A client that never reads (TCP window full) is tests/integration/test_edge_scale.py's stalled client;
an oversized body, a JSON bomb and a WebSocket that sends frames are in tests/e2e/test_hostile.py.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from agentwire.auth import hash_key
from tests.e2e.test_hostile import rss_kb
from tests.integration.flows import check_stream
from tests.support.sse import read_stream
from tests.support.stack import Stack

IDLE_S = 3.0
KEY = "ak-hostile-0123456789"
IDLE_CONNECTIONS = 10_000
# What one held, idle connection may cost the gateway: aiohttp's protocol object, its parser and
# its start() task, asyncio's transport and the socket's buffers (measured ≈ 4 KB; allocator slack).
PER_CONNECTION_KB = 12
TOKENS = 600  # issued, then as many forged ones presented


@pytest.fixture(scope="module")
def hostile(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway on the shared stack's topics: idle timeout IDLE_S, API keys on."""
    workdir: Path = tmp_path_factory.mktemp("hostile")
    keys = workdir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "hostile", "tenant": "hostile", "sha256": hash_key(KEY), "per_minute": 1_000_000}]}))
    gateway = Stack(stack.bootstrap, workdir, prefix=stack.prefix, partitions=stack.partitions, extra_env={
        "ENVIRONMENT": "test", "AGENTWIRE_AUTH__KEYS_FILE": str(keys),
        "AGENTWIRE_HTTP__IDLE_TIMEOUT_S": str(IDLE_S)})
    try:
        gateway.add("gateway", "agentwire-gateway").start()
        gateway.services["gateway"].wait_ready()
        yield gateway
    finally:
        gateway.stop()


def address(stack: Stack) -> tuple[str, int]:
    host, port = stack.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def others_unaffected(stack: Stack) -> None:
    workflow_id = submit_keyed(stack)
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id}, headers={"X-API-Key": KEY}, timeout=60)
    check_stream(frames)


def submit_keyed(stack: Stack) -> str:
    answer = httpx.post(f"{stack.base_url}/api/v1/tasks", headers={"X-API-Key": KEY}, timeout=30,
                        json={"query": "Research AI trends", "mode": "simple", "context": {"speed": 4}})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["workflow_id"])


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    """True if the server ends the connection (EOF or reset) within ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def raw_request(stack: Stack, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address(stack))
    writer.write(head)
    await writer.drain()
    async with asyncio.timeout(10):
        status = await reader.readline()
    writer.close()
    return status


def test_slowloris_heads_are_cut_off_and_header_floods_refused(hostile: Stack) -> None:
    async def trickle() -> float:
        reader, writer = await asyncio.open_connection(*address(hostile))
        opened = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")

        async def drip() -> None:
            for i in range(1000):  # a header every 0.2 s, never the blank line that ends the head
                writer.write(f"X-Slow-{i}: y\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.2)

        dripping = asyncio.create_task(drip())
        try:
            assert await closed_by_server(reader, IDLE_S + 10), "a slowloris head was never cut off"
        finally:
            dripping.cancel()
            writer.close()
        return time.monotonic() - opened

    async def scenario() -> list[float]:
        slow = [asyncio.create_task(trickle()) for _ in range(50)]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=hostile.base_url, timeout=5) as http:  # served meanwhile
            assert (await http.get("/health")).status_code == 200
        many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H-%d: y\r\n" % i for i in range(200)) + b"\r\n"
        long = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"y" * 20_000 + b"\r\n\r\n"
        for head in (many, long):
            assert (await raw_request(hostile, head)).split()[1] == b"400", head[:60]
        return await asyncio.gather(*slow)

    lasted = asyncio.run(scenario())
    assert max(lasted) < IDLE_S + 8, lasted  # the idle timeout, ceiled to whole seconds by aiohttp
    others_unaffected(hostile)


def test_ten_thousand_idle_connections_are_held_bounded_and_closed(hostile: Stack) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + 512
    assert hard == resource.RLIM_INFINITY or hard >= needed, f"open files hard limit {hard} < {needed}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    before = rss_kb(hostile)
    # long enough for the stream check below; the held connections close IDLE_S after they opened
    workflow_id = submit_keyed(hostile)

    async def scenario() -> tuple[int, int, int, float]:
        connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(IDLE_CONNECTIONS // 500):  # in batches within the listen backlog (http.listen_backlog)
            connections += await asyncio.gather(*(asyncio.open_connection(*address(hostile)) for _ in range(500)))
        peak = rss_kb(hostile)
        async with httpx.AsyncClient(base_url=hostile.base_url, timeout=10) as http:
            began = time.monotonic()
            health = await http.get("/health")
            served_s = time.monotonic() - began
            assert health.status_code == 200
        closed = await asyncio.gather(*(closed_by_server(r, IDLE_S + 30) for r, _ in connections))
        for _, writer in connections:
            writer.close()
        return len(connections), sum(closed), peak, served_s

    opened, closed, peak, served_s = asyncio.run(scenario())
    assert opened == IDLE_CONNECTIONS
    assert closed == IDLE_CONNECTIONS, f"{IDLE_CONNECTIONS - closed} idle connections never closed"
    growth_kb = peak - before
    assert growth_kb < IDLE_CONNECTIONS * PER_CONNECTION_KB, (growth_kb, "KB for", IDLE_CONNECTIONS)
    assert served_s < 5.0, served_s
    frames, _ = read_stream(hostile.base_url, {"workflow_id": workflow_id}, headers={"X-API-Key": KEY}, timeout=60)
    check_stream(frames)


@pytest.mark.parametrize("route", ["sse", "ws"])
def test_huge_types_filter(hostile: Stack, route: str) -> None:
    huge = ",".join(f"TYPE_{i}" for i in range(20_000))  # ≈ 200 KB: past the request line limit
    head = (f"GET /api/v1/stream/{route}?workflow_id=task-x&types={huge} HTTP/1.1\r\nHost: x\r\n"
            f"X-API-Key: {KEY}\r\n\r\n").encode()
    status = asyncio.run(raw_request(hostile, head)).split()[1]
    assert status.startswith(b"4"), status
    if route == "ws":
        return
    workflow_id = submit_keyed(hostile)
    long = ",".join([f"NOPE_{i}" for i in range(600)] + ["WORKFLOW_STARTED", "STREAM_END"])  # ≈ 6 KB: within
    frames, _ = read_stream(hostile.base_url, {"workflow_id": workflow_id, "types": long},
                            headers={"X-API-Key": KEY}, timeout=60)
    assert [f.event for f in frames] == ["WORKFLOW_STARTED", "done"]


def test_a_flood_of_stream_tokens_costs_nothing(hostile: Stack) -> None:
    workflow_id = submit_keyed(hostile)
    before = rss_kb(hostile)

    async def flood() -> str:
        # at most 50 requests in flight: httpx's pool spends time quadratic in its queued requests
        gate = asyncio.Semaphore(50)

        async def post(http: httpx.AsyncClient) -> httpx.Response:
            async with gate:
                return await http.post("/api/v1/stream/token", headers={"X-API-Key": KEY},
                                       json={"workflow_id": workflow_id})

        async def connect(http: httpx.AsyncClient, token: str) -> httpx.Response:
            async with gate:
                return await http.get("/api/v1/stream/sse", params={"workflow_id": workflow_id, "token": token})

        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=hostile.base_url, timeout=30, limits=limits) as http:
            issued = await asyncio.gather(*(post(http) for _ in range(TOKENS)))
            assert {r.status_code for r in issued} == {200}
            token = str(issued[-1].json()["token"])
            tried = await asyncio.gather(*(connect(http, token[:-4] + f"{i:04d}") for i in range(TOKENS)))
            assert {r.status_code for r in tried} == {401}  # forged: the MAC does not verify
            return token

    token = asyncio.run(flood())
    assert rss_kb(hostile) - before < 32 * 1024  # nothing kept per token: allocator slack only
    frames, _ = read_stream(hostile.base_url, {"workflow_id": workflow_id, "token": token}, timeout=60)
    check_stream(frames)
