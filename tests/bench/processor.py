"""Processor throughput: raw events sequenced per second by ONE processor process.

Pre-loads N raw events (BENCH_WORKFLOWS workflows × BENCH_EVENTS_PER_WORKFLOW
events, realistic agent runs) into a fresh prefix's events.raw, then starts one
``agentwire-processor`` and measures, from the first sequenced event to the last,
how fast the events topic's end offsets grow to the expected total (every raw
event plus the derived PROGRESS and STREAM_END events). Prints one JSON object
on its last line.

    python -m tests.bench.processor   # AGENTWIRE_TEST_KAFKA=127.0.0.1:19092 to use a running broker
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agentwire.kafka import ensure_topics
from agentwire.service.settings import KafkaSettings
from tests.support.broker import kafka_broker
from tests.support.stack import Stack

WORKFLOWS = int(os.environ.get("BENCH_WORKFLOWS", "2000"))
PER_WORKFLOW = int(os.environ.get("BENCH_EVENTS_PER_WORKFLOW", "100"))
PARTITIONS = 12
USAGE = {"tokens_used": 10, "input_tokens": 5, "output_tokens": 5, "cost_usd": 0.0001, "model_used": "m",
         "provider": "p"}


def workflow_events(workflow_id: str, count: int) -> tuple[list[bytes], int]:
    """One workflow's raw events and how many sequenced events they become."""
    body: list[tuple[str, dict | None, str]] = [("WORKFLOW_STARTED", None, "Task processing started")]
    agents = max((count - 3) // 10, 1)
    body.append(("PROGRESS", {"completed": 0, "total": agents, "percent": 0}, "plan"))
    for a in range(agents):
        body.append(("AGENT_STARTED", None, "Processing query"))
        body.extend(("LLM_PARTIAL", None, f"chunk {i} of agent {a} ") for i in range(7))
        body.append(("LLM_OUTPUT", USAGE, "the answer"))
        body.append(("AGENT_COMPLETED", None, "Task done"))
    while len(body) < count - 1:
        body.append(("LLM_PARTIAL", None, "padding chunk "))
    body.append(("WORKFLOW_COMPLETED", {"result": "done"}, "All done"))
    records = [
        orjson.dumps({"event_id": f"{workflow_id}:{n}", "workflow_id": workflow_id, "type": kind,
                      "agent_id": "bench-agent", "message": message, "payload": payload,
                      "timestamp": "2026-01-01T00:00:00Z"})
        for n, (kind, payload, message) in enumerate(body, start=1)
    ]
    return records, len(records) + agents + 1  # + PROGRESS per AGENT_COMPLETED, + STREAM_END


async def preload(bootstrap: str, topic: str) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024,
                                compression_type=None, acks=1)
    await producer.start()
    raw = expected = 0
    try:
        for w in range(WORKFLOWS):
            workflow_id = f"bench-{w:06d}"
            records, outputs = workflow_events(workflow_id, PER_WORKFLOW)
            key = workflow_id.encode()
            futures = [await producer.send(topic, value, key=key) for value in records]
            raw += len(records)
            expected += outputs
            if w % 50 == 49:
                await asyncio.gather(*futures)
        await producer.flush()
    finally:
        await producer.stop()
    return raw, expected


async def end_total(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    return sum((await consumer.end_offsets(tps)).values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(bootstrap: str, topic: str, expected: int, started: float, limit_s: float,
                  pid: int) -> tuple[float, float, int, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    first = None
    cpu_first = 0.0
    total = 0
    try:
        while time.monotonic() - started < limit_s:
            total = await end_total(consumer, tps)
            now = time.monotonic()
            if total and first is None:
                first, cpu_first = now, cpu_seconds(pid)
            if total >= expected:
                assert first is not None
                return first - started, now - first, total, cpu_seconds(pid) - cpu_first
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    raise RuntimeError(f"only {total} of {expected} events after {limit_s}s")


def main() -> None:
    with kafka_broker(PARTITIONS) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-proc-") as workdir:
        stack = Stack(bootstrap, Path(workdir), partitions=PARTITIONS)
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=stack.prefix, partitions=PARTITIONS)
        asyncio.run(ensure_topics(kafka))
        t0 = time.monotonic()
        raw, expected = asyncio.run(preload(bootstrap, kafka.topics.events_raw))
        preload_s = time.monotonic() - t0
        processor = stack.add("processor", "agentwire-processor")
        started = time.monotonic()
        processor.start()
        try:
            assert processor.process is not None
            startup_s, busy_s, total, cpu_s = asyncio.run(
                measure(bootstrap, kafka.topics.events, expected, started, 600, processor.process.pid))
        finally:
            processor.stop()
    figures = {
        "processor_events_per_s": round(raw / busy_s),
        "processor_outputs_per_s": round(total / busy_s),
        "events": raw,
        "outputs": total,
        "workflows": WORKFLOWS,
        "seconds": round(busy_s, 2),
        "processor_cpu_s": round(cpu_s, 2),
        "processor_events_per_cpu_s": round(raw / cpu_s) if cpu_s else None,
        "load_average_1m": os.getloadavg()[0],
        "startup_s": round(startup_s, 2),
        "preload_s": round(preload_s, 2),
        "cores": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
