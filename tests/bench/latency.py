"""End-to-end latency: raw event produced (as a runner would) → SSE frame received.

A real processor and a real edge run as processes; this process produces
LLM_PARTIAL raw events at BENCH_RATE per second (default 1,000) carrying their
produce time, and reads them over SSE. Prints p50/p99 in ms as JSON on the last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agentwire.kafka import partition_for
from agentwire.schema import RawEvent, TaskSubmitted, Topics, encode
from tests.bench.feed import TENANT, Feed
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

RATE = int(os.environ.get("BENCH_RATE", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


async def measure(stack: Stack) -> dict[str, float]:
    topics = Topics(stack.prefix)
    base = stack.services["edge"].health_url.removesuffix("/health")
    wf = f"task-{uuid.uuid4().hex[:12]}"
    task = TaskSubmitted(workflow_id=wf, tenant=TENANT, query="bench", session_id="s")
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
    await producer.start()
    latencies: list[float] = []
    received: dict[str, float] = {}  # produce time (the delta text) → SSE receipt time
    appended: dict[str, float] = {}  # produce time → the processor's append time (record CreateTime)
    total = int(RATE * SECONDS)

    def raw(i: int, kind: str, message: str | None = None) -> bytes:
        # runner-style ids number from 1: the processor treats `<prefix>:0` as already seen
        return encode(RawEvent(event_id=f"{wf}:{i + 1}", workflow_id=wf, type=kind, agent_id="a",
                               message=message, task=task if i == 0 else None))

    async def produce() -> None:
        started = time.perf_counter()
        for i in range(1, total + 1):
            delay = started + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topics.events_raw, raw(i, "LLM_PARTIAL", repr(time.time())), key=wf.encode())
        await producer.send(topics.events_raw, raw(total + 1, "WORKFLOW_COMPLETED"), key=wf.encode())
        await producer.flush()

    async def consume(first: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=60) as client, client.stream(
                "GET", f"{base}/api/v1/stream/sse", params={"workflow_id": wf}) as response:
            name = None
            async for line in response.aiter_lines():
                if os.environ.get("BENCH_DEBUG"):
                    print(line[:200])
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "thread.message.delta" and b"delta" in line.encode():
                    now = time.time()
                    delta = orjson.loads(line[6:])["delta"]
                    received[delta] = now
                    latencies.append(now - float(delta))
                    if len(latencies) >= total:
                        return
                elif line.startswith("data: "):
                    first.set()

    async def tap(done: asyncio.Event) -> None:
        """Read the events topic too, to split the latency into processor and edge parts."""
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=5)
        await consumer.start()
        try:
            tp = TopicPartition(topics.events, partition_for(wf, stack.partitions))
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while not done.is_set():
                batches = await consumer.getmany(tp, timeout_ms=100)
                for record in batches.get(tp, []):
                    if record.key == wf.encode():
                        event = orjson.loads(record.value)
                        if event.get("type") == "LLM_PARTIAL":
                            appended[event["message"]] = record.timestamp / 1000
        finally:
            await consumer.stop()

    tapped = asyncio.Event()
    tapper = asyncio.create_task(tap(tapped))
    try:
        async with Feed(stack.bootstrap, stack.prefix) as feed:  # the QUEUED state ingest would write
            await feed.declare(wf)
        first = asyncio.Event()
        reader = asyncio.create_task(consume(first))
        # A fresh processor group may join after a first event was produced and start past it
        # (readiness does not wait for the group's assignment): offer WORKFLOW_STARTED until
        # the edge streams it; the processor drops the repeats by event id.
        async with asyncio.timeout(60):
            while not first.is_set():
                await producer.send_and_wait(topics.events_raw, raw(0, "WORKFLOW_STARTED"), key=wf.encode())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(first.wait(), 1.0)
        await produce()
        await asyncio.wait_for(reader, 60)
        async with asyncio.timeout(30):
            while len(appended) < total:  # noqa: ASYNC110 - polling with a deadline
                await asyncio.sleep(0.05)
    finally:
        tapped.set()
        await tapper
        await producer.stop()
    steady = sorted(latencies[len(latencies) // 10:])  # drop the first 10 % (warm-up)
    keys = list(received)[len(received) // 10:]
    processor = sorted(appended[k] - float(k) for k in keys if k in appended)
    edge = sorted(received[k] - appended[k] for k in keys if k in appended)
    return {
        "e2e_processor_p50_ms": round(statistics.median(processor) * 1000, 1),
        "e2e_processor_p99_ms": round(processor[int(len(processor) * 0.99) - 1] * 1000, 1),
        "e2e_edge_p50_ms": round(statistics.median(edge) * 1000, 1),
        "e2e_edge_p99_ms": round(edge[int(len(edge) * 0.99) - 1] * 1000, 1),
        "e2e_rate_per_s": RATE,
        "e2e_events": len(latencies),
        "e2e_latency_p50_ms": round(statistics.median(steady) * 1000, 1),
        "e2e_latency_p99_ms": round(steady[int(len(steady) * 0.99) - 1] * 1000, 1),
    }


def main() -> None:
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-latency-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={"GATEWAY_SKIP_AUTH": "1"})
        stack.add("processor", "agentwire-processor")
        stack.add("edge", "agentwire-edge")
        try:
            for service in stack.services.values():
                service.start()
            for service in stack.services.values():
                service.wait_ready()
            figures = asyncio.run(measure(stack))
        finally:
            stack.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
