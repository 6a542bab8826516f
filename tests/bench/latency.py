"""End-to-end latency: raw event produced (as a runner would) → SSE frame received.

A real processor and a real edge run as processes; this process produces
LLM_PARTIAL raw events at each of BENCH_RATES per second (default 1,000 then 100)
carrying their produce time, and reads them over SSE. The raw and events topics
stamp records with their append time, which splits each event's latency into hops:
produce → raw topic, raw topic → events topic (the processor), events topic → SSE
client (the edge). Prints p50/p99 in ms as JSON on the last line.
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
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agentwire.kafka import partition_for
from agentwire.schema import RawEvent, TaskSubmitted, Topics, encode
from tests.bench.feed import TENANT, Feed
from tests.bench.processor import EXTRA_ENV  # BENCH_PROCESSOR_ENV: settings for the services
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

RATES = [int(r) for r in os.environ.get("BENCH_RATES", os.environ.get("BENCH_RATE", "1000,100")).split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


async def append_times(bootstrap: str, topics: list[str]) -> None:
    """Have the broker stamp records with their append time, so each hop can be timed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {"message.timestamp.type": "LogAppendTime"}) for topic in topics])
    finally:
        await admin.close()


def quantiles(name: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"{name}_p50_ms": round(statistics.median(ordered) * 1000, 1),
            f"{name}_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1)}


async def measure(stack: Stack, rate: int) -> dict[str, float]:
    topics = Topics(stack.prefix)
    base = stack.services["edge"].health_url.removesuffix("/health")
    wf = f"task-{uuid.uuid4().hex[:12]}"
    task = TaskSubmitted(workflow_id=wf, tenant=TENANT, query="bench", session_id="s")
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
    await producer.start()
    latencies: list[float] = []
    received: dict[str, float] = {}  # produce time (the delta text) → SSE receipt time
    appended: dict[str, float] = {}  # produce time → the sequenced event's append time (events topic)
    raw_appended: dict[str, float] = {}  # produce time → the raw event's append time (raw topic)
    total = int(rate * SECONDS)

    def raw(i: int, kind: str, message: str | None = None) -> bytes:
        # runner-style ids number from 1: the processor treats `<prefix>:0` as already seen
        return encode(RawEvent(event_id=f"{wf}:{i + 1}", workflow_id=wf, type=kind, agent_id="a",
                               message=message, task=task if i == 0 else None))

    async def produce() -> None:
        started = time.perf_counter()
        for i in range(1, total + 1):
            delay = started + i / rate - time.perf_counter()
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
            partition = partition_for(wf, stack.partitions)
            tps = {TopicPartition(topics.events, partition): appended,
                   TopicPartition(topics.events_raw, partition): raw_appended}
            consumer.assign(list(tps))
            await consumer.seek_to_beginning(*tps)
            while not done.is_set():
                batches = await consumer.getmany(*tps, timeout_ms=100)
                for tp, records in batches.items():
                    for record in records:
                        if record.key == wf.encode():
                            event = orjson.loads(record.value)
                            if event.get("type") == "LLM_PARTIAL":
                                tps[tp][event["message"]] = record.timestamp / 1000
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
    timed = [k for k in keys if k in appended and k in raw_appended]
    prefix = "e2e" if rate == RATES[0] else f"e2e_{rate}"
    return {
        f"{prefix}_rate_per_s": rate,
        f"{prefix}_events": len(latencies),
        **quantiles(f"{prefix}_latency", steady),
        # the budget, hop by hop (broker append times): produce → raw topic, → events topic, → SSE client
        **quantiles(f"{prefix}_hop_produce", [raw_appended[k] - float(k) for k in timed]),
        **quantiles(f"{prefix}_hop_processor", [appended[k] - raw_appended[k] for k in timed]),
        **quantiles(f"{prefix}_hop_edge", [received[k] - appended[k] for k in timed]),
    }


def main() -> None:
    with kafka_broker(12) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-latency-") as workdir:
        stack = Stack(bootstrap, Path(workdir), extra_env={"GATEWAY_SKIP_AUTH": "1", **EXTRA_ENV})
        stack.add("processor", "agentwire-processor")
        stack.add("edge", "agentwire-edge")
        try:
            stack.start_all()
            topics = Topics(stack.prefix)
            asyncio.run(append_times(bootstrap, [topics.events_raw, topics.events]))
            figures: dict[str, float] = {}
            for rate in RATES:
                figures.update(asyncio.run(measure(stack, rate)))
        finally:
            stack.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
