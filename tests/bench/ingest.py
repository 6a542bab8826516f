"""Ingest throughput: task submissions per second by one ingest process, keep-alive clients.

One ``agentwire-ingest`` process (auth skipped, no rate limit) on a real broker; a load
generator in another process keeps BENCH_INGEST_CONNECTIONS [64] keep-alive connections busy
(closed loop) for BENCH_INGEST_SECONDS [20] after a warm-up. Every submission carries an
Idempotency-Key; BENCH_INGEST_RETRY_SHARE [0.1] of them repeat an earlier key with the same body
(a client retrying), which must answer the cached response. Prints submissions/s and latency
percentiles as JSON on the last line. CPU of the ingest process is sampled too, so the figure
can be read as submissions per ingest CPU-second. BENCH_INGEST_PROFILE=path records the ingest
process with py-spy over the measured window (``python -m tests.bench.profile path`` shows the top).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from tests.bench.profile import recording
from tests.support import postgres
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

CONNECTIONS = int(os.environ.get("BENCH_INGEST_CONNECTIONS", "64"))
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "20"))
WARMUP_S = float(os.environ.get("BENCH_INGEST_WARMUP_S", "3"))
RETRY_SHARE = float(os.environ.get("BENCH_INGEST_RETRY_SHARE", "0.1"))
LOADERS = int(os.environ.get("BENCH_INGEST_LOADERS", "1"))
PROFILE = os.environ.get("BENCH_INGEST_PROFILE", "")


async def load(base_url: str, seconds: float, seed: int) -> dict[str, object]:
    """Closed-loop submissions over keep-alive connections; latencies of the measured window."""
    rng = random.Random(seed)
    url = f"{base_url}/api/v1/tasks"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    replays = 0
    used: list[tuple[str, bytes]] = []
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    warm_until = time.monotonic() + WARMUP_S
    stop_at = warm_until + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal replays
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            if used and rng.random() < RETRY_SHARE:
                key, body = rng.choice(used)
                replay = True
            else:
                key = f"bench-{seed}-{n}-{i}-{uuid.uuid4().hex[:8]}"
                body = json.dumps({"query": f"bench {n}/{i}", "mode": "simple"}).encode()
                replay = False
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Idempotency-Key": key,
                                                             "Content-Type": "application/json"}) as response:
                await response.read()
                status = response.status
            took = time.perf_counter() - started
            if not replay and status == 200 and len(used) < 10_000:
                used.append((key, body))
            if time.monotonic() >= warm_until:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1
                replays += replay and response.headers.get("X-Idempotency-Cached") == "true"

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, n) for n in range(CONNECTIONS // LOADERS)))
    return {"latencies": latencies, "statuses": statuses, "replays": replays}


def _loader(base_url: str, seconds: float, seed: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(load(base_url, seconds, seed)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(base_url: str, pid: int) -> dict[str, object]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    loaders = [multiprocessing.Process(target=_loader, args=(base_url, SECONDS, k, queue)) for k in range(LOADERS)]
    for process in loaders:
        process.start()
    time.sleep(WARMUP_S)
    cpu_before = cpu_seconds(pid)
    with recording(pid, Path(PROFILE)) if PROFILE else contextlib.nullcontext():
        results = [queue.get(timeout=SECONDS + WARMUP_S + 120) for _ in loaders]
    cpu_used = cpu_seconds(pid) - cpu_before
    for process in loaders:
        process.join()
    latencies = sorted(x for r in results for x in r["latencies"])  # type: ignore[attr-defined]
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r["statuses"].items():  # type: ignore[attr-defined]
            statuses[str(status)] = statuses.get(str(status), 0) + count
    done = len(latencies)

    def pct(q: float) -> float:
        return round(latencies[min(done - 1, int(q * done))] * 1000, 2) if done else 0.0

    return {
        "ingest_submissions_per_s": round(done / SECONDS, 1),
        "ingest_submit_p50_ms": pct(0.50),
        "ingest_submit_p99_ms": pct(0.99),
        "ingest_submit_max_ms": pct(1.0),
        "ingest_submissions": done,
        "ingest_replays_cached": sum(int(r["replays"]) for r in results),  # type: ignore[call-overload]
        "ingest_statuses": statuses,
        "ingest_cpu_s_per_s": round(cpu_used / SECONDS, 2),
        "ingest_submissions_per_cpu_s": round(done / cpu_used, 1) if cpu_used else 0.0,
        "ingest_connections": CONNECTIONS,
    }


def main() -> None:
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={
            "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "100000000"})
        ingest = stack.add("ingest", "agentwire-ingest")
        try:
            ingest.start()
            ingest.wait_ready()
            assert ingest.process is not None
            figures = measure(ingest.health_url.removesuffix("/health"), ingest.process.pid)
        finally:
            stack.stop()
            stack.delete_topics()
            postgres.drop_database(stack.prefix)
    sys.stderr.write(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
