"""Edge benchmarks: late join, concurrent SSE clients and RSS, deliveries per second.

The edge runs as its own process (``agentwire-edge``); this process is the load
generator: it writes events with tests.bench.feed and holds the clients on raw
sockets. Figures print as one JSON object on the last line.

    python -m tests.bench.edge        # env BENCH_CLIENTS, BENCH_FANOUT_CLIENTS to resize
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import httpx

from tests.bench.feed import Feed
from tests.bench.proc import cpu_seconds
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "10000"))
FANOUT_CLIENTS = int(os.environ.get("BENCH_FANOUT_CLIENTS", "1000"))
FANOUT_EVENTS = int(os.environ.get("BENCH_FANOUT_EVENTS", "500"))
# settings for the edge under test, e.g. AGENTWIRE_EVENT_LOOP=asyncio: BENCH_EDGE_ENV="KEY=VALUE KEY=VALUE"
EXTRA_ENV = dict(item.split("=", 1) for item in os.environ.get("BENCH_EDGE_ENV", "").split())
HISTORY = 10_000


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


async def open_sse(host: str, port: int, workflow_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /api/v1/stream/sse?workflow_id={workflow_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")  # headers
    return reader, writer


async def late_join(feed: Feed, base: str) -> dict[str, float]:
    wf = await feed.declare()
    for _ in range(HISTORY - 2):
        await feed.emit(wf, message="token " * 8)
    await feed.finish(wf)
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(3):
            started = time.perf_counter()
            frames = 0
            async with client.stream("GET", f"{base}/api/v1/stream/sse", params={"workflow_id": wf}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        frames += 1
            assert frames == HISTORY, frames
            times.append(time.perf_counter() - started)
    return {"late_join_10k_s_first": round(times[0], 3), "late_join_10k_s_best": round(min(times), 3)}


async def settled(base: str, clients: int) -> float:
    """Seconds until the edge's live tail writes to ``clients`` clients directly (each one caught up).

    Polled twice a second: each look is a scrape of the edge's metrics, which would otherwise add to
    what is measured.
    """
    started = time.perf_counter()
    async with asyncio.timeout(120):
        while await asyncio.to_thread(metric, base, "agentwire_edge_direct_clients") < clients:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def hold_clients(feed: Feed, host: str, port: int, base: str, pid: int) -> dict[str, float]:
    wf = await feed.declare()
    await feed.emit(wf, "WORKFLOW_STARTED", wait=True)
    await asyncio.sleep(1)
    before = rss_kb(pid)
    conns = []
    started = time.perf_counter()
    sem = asyncio.Semaphore(200)

    async def one() -> None:
        async with sem:
            conns.append(await open_sse(host, port, wf))

    results = await asyncio.gather(*(one() for _ in range(CLIENTS)), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    connect_s = time.perf_counter() - started
    # measured once every client has caught up (a client still being set up holds its start-up state,
    # and one not yet set up holds less than it will), and no sooner than 2 s after the last connected
    settle_s = await settled(base, CLIENTS - failed)
    await asyncio.sleep(max(0.0, 2 - settle_s))
    after = rss_kb(pid)
    for _, writer in conns:
        writer.close()
    held = len(conns)
    return {
        "clients_held": held,
        "clients_failed": failed,
        "clients_connect_s": round(connect_s, 1),
        "clients_settle_s": round(settle_s, 1),
        "edge_rss_base_mb": round(before / 1024, 1),
        "edge_rss_with_clients_mb": round(after / 1024, 1),
        "edge_rss_per_client_kb": round((after - before) / max(held, 1), 1),
    }


async def fanout(feed: Feed, host: str, port: int, base: str, pid: int) -> dict[str, float]:
    wf = await feed.declare()
    await feed.emit(wf, "WORKFLOW_STARTED", wait=True)
    conns = [await open_sse(host, port, wf) for _ in range(FANOUT_CLIENTS)]
    for reader, _ in conns:  # each has its `: connected` and the first event
        await reader.readuntil(b"WORKFLOW_STARTED")

    async def drain(reader: asyncio.StreamReader) -> None:
        tail = b""
        while b"[DONE]" not in tail:
            chunk = await reader.read(65536)
            if not chunk:
                raise RuntimeError("closed early")
            tail = tail[-16:] + chunk

    delivered_before = metric(base, "agentwire_edge_events_delivered_total")
    drains = [asyncio.create_task(drain(r)) for r, _ in conns]
    started = time.perf_counter()
    cpu_before = cpu_seconds(pid)
    for _ in range(FANOUT_EVENTS - 2):
        await feed.emit(wf, message="token " * 8)
    await feed.finish(wf)
    await asyncio.gather(*drains)
    elapsed = time.perf_counter() - started
    edge_cpu = cpu_seconds(pid) - cpu_before
    delivered = metric(base, "agentwire_edge_events_delivered_total") - delivered_before
    for _, writer in conns:
        writer.close()
    return {
        "fanout_clients": FANOUT_CLIENTS,
        "fanout_events": FANOUT_EVENTS,
        "deliveries": int(delivered),
        "deliveries_per_s": round(delivered / elapsed),
        "fanout_edge_cpu_s": round(edge_cpu, 2),
        # what one fully used core would deliver (the edge shares 2 cores with broker and load generator)
        "deliveries_per_edge_cpu_s": round(delivered / max(edge_cpu, 0.01)),
    }


async def run(stack: Stack) -> dict[str, float]:
    edge = stack.services["edge"]
    assert edge.process is not None
    base = edge.health_url.removesuffix("/health")
    host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
    figures: dict[str, float] = {}
    async with Feed(stack.bootstrap, stack.prefix) as feed:
        # held clients last: 10,000 departing sessions end only at their next keepalive write,
        # which would run inside any measurement that followed
        figures.update(await late_join(feed, base))
        figures.update(await fanout(feed, host, port, base, edge.process.pid))
        figures.update(await hold_clients(feed, host, port, base, edge.process.pid))
    return figures


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-edge-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={"GATEWAY_SKIP_AUTH": "1", **EXTRA_ENV})
        edge = stack.add("edge", "agentwire-edge")
        # the edge inherits our raised file limit
        edge.start()
        try:
            edge.wait_ready()
            figures = asyncio.run(run(stack))
        finally:
            stack.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
