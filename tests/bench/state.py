"""State that stays bounded: RSS per service and list latency at 0, 100k and 1M tasks.

Writes synthetic finished TaskState records straight to the task-state topic (100 tenants, 10
sessions each, a quarter FAILED), waits until the query store has indexed them, then measures
``GET /api/v1/tasks`` (plain, by status, by session, a deep offset, a cursor page) with 100 keys,
sequentially, and reads every service's RSS. At the end ingest and edge are restarted and timed to
ready. The processor's tables get the same history on their changelogs; it is restarted at each
level (cold: it recovers all of it; warm: again, with its data directory) before its RSS is read.
Prints one JSON object on its last line. BENCH_STATE_LEVELS=0,100000 runs fewer levels.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agentwire.auth import hash_key
from agentwire.kafka.partitioning import partition_for
from agentwire.processor.row import Row
from agentwire.schema import TaskState, TaskStatus, Topics, encode
from agentwire.schema.commands import TaskSubmitted
from agentwire.service.settings import KafkaSettings, Settings, StoreSettings
from agentwire.store import open_store
from tests.support.broker import kafka_broker
from tests.support.stack import Service, Stack
from tests.support.wait import eventually

TENANTS = 100
SESSIONS = 10
LEVELS = [int(n) for n in os.environ.get("BENCH_STATE_LEVELS", "0,100000,1000000").split(",")]
REQUESTS = int(os.environ.get("BENCH_STATE_REQUESTS", "2000"))
WARM_UP = 300  # requests not counted: the first pass over a level reads its index pages into the cache
PARTITIONS = 12
SETTLED_AFTER_S = 6.0  # the processor's "settled" RSS is read this long after its restart is ready


def key_of(tenant: int) -> str:
    return f"ak-bench-tenant-{tenant:03d}-0123456789"


def rss_mb(service: Service) -> float:
    assert service.process is not None
    for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


async def write_tasks(bootstrap: str, topics: Topics, start: int, count: int) -> float:
    """Write ``count`` finished tasks (numbered from ``start``); returns records/s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1 << 20)
    await producer.start()
    began = time.perf_counter()
    epoch = datetime.now(UTC) - timedelta(days=1)
    batches: dict[int, Any] = {}
    sent: list[asyncio.Future[Any]] = []

    async def ship(partition: int) -> None:
        sent.append(await producer.send_batch(batches.pop(partition), topics.task_state, partition=partition))

    try:
        template = orjson.loads(encode(_example()))  # a real TaskState's JSON, changed per record below
        for n in range(start, start + count):
            tenant = n % TENANTS
            created = epoch + timedelta(milliseconds=n)
            ended = (created + timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
            workflow_id = f"task-bench-{n:09d}"
            template["task"].update(workflow_id=workflow_id, tenant=f"tenant-{tenant:03d}", query=f"bench query {n}",
                                    session_id=f"session-{tenant:03d}-{(n // TENANTS) % SESSIONS}",
                                    created_at=created.isoformat().replace("+00:00", "Z"))
            template.update(status=(TaskStatus.FAILED if n % 4 == 0 else TaskStatus.COMPLETED).value,
                            updated_at=ended, completed_at=ended)
            key, value = workflow_id.encode(), orjson.dumps(template)
            partition = partition_for(key, PARTITIONS)
            batch = batches.setdefault(partition, producer.create_batch())
            if batch.append(key=key, value=value, timestamp=None) is None:
                await ship(partition)
                batches[partition] = producer.create_batch()
                batches[partition].append(key=key, value=value, timestamp=None)
        for partition in list(batches):
            await ship(partition)
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return count / max(time.perf_counter() - began, 1e-9)


async def write_processor_rows(bootstrap: str, prefix: str, start: int, count: int) -> None:
    """The same finished tasks as the processor's tables hold them: a row and a task per workflow,
    on the tables' changelogs (JSON key and value, faust's encoding), so a restarted processor
    recovers this much history."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    ended = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    row = Row(workflow_id="x", seq=12, status=TaskStatus.COMPLETED, progress=1.0, result="done",
              last_activity=ended, updated_at=ended, completed_at=ended, first_offset=0).dump()
    task = TaskSubmitted(workflow_id="x", tenant="t", query="q", session_id="s").model_dump(mode="json")
    try:
        for n in range(start, start + count):
            workflow_id = f"task-bench-{n:09d}"
            key, partition = orjson.dumps(workflow_id), partition_for(workflow_id.encode(), PARTITIONS)
            row["workflow_id"] = task["workflow_id"] = workflow_id
            await producer.send(f"{prefix}-processor-workflows-changelog", orjson.dumps(row), key=key,
                                partition=partition)
            await producer.send(f"{prefix}-processor-tasks-changelog", orjson.dumps(task), key=key,
                                partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def _example() -> TaskState:
    """A finished task as the processor writes it (the bench changes ids, tenants and times)."""
    now = datetime.now(UTC)
    task = TaskSubmitted(workflow_id="task-x", tenant="t", query="q", session_id="s", created_at=now)
    return TaskState(task=task, status=TaskStatus.COMPLETED, progress=1.0, result="done", last_seq=12,
                     model_used="stub-medium", provider="agentwire", updated_at=now, completed_at=now)


async def end_total(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def wait_indexed(dsn: str, bootstrap: str, topic: str, timeout: float = 1800) -> float:  # noqa: ASYNC109
    """Wait until the store's offsets reach the topic's end; returns seconds waited."""
    target = await end_total(bootstrap, topic)
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            done = await conn.fetchval("SELECT coalesce(sum(next_offset), 0) FROM task_state_offsets")
            if done >= target:
                return time.perf_counter() - began
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"store indexed {done} of {target} records in {timeout}s")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def settle(dsn: str) -> None:
    """What autovacuum does after a bulk load, at once: statistics and the visibility map.

    Until then the planner has no statistics for the new rows and counts cannot use index-only
    scans; a bench that measured the first minutes after loading a million rows would measure that.
    """
    await asyncio.sleep(1)  # the loading transactions must be older than every snapshot
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE tasks")
        await conn.execute("VACUUM ANALYZE sessions")
    finally:
        await conn.close()


def list_latencies(base: str, tasks_now: int) -> dict[str, float]:
    """Sequential list requests over random tenants and filters; p50/p99 in ms."""
    rng = random.Random(16)
    per_tenant = tasks_now // TENANTS
    samples: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(REQUESTS + WARM_UP):
            tenant = rng.randrange(TENANTS)
            headers = {"X-API-Key": key_of(tenant)}
            variant = i % 5
            params: dict[str, str | int] = {"limit": 20}
            if variant == 1:
                params["status"] = "FAILED"
            elif variant == 2:
                params["session_id"] = f"session-{tenant:03d}-{rng.randrange(SESSIONS)}"
            elif variant == 3:
                params["offset"] = max(0, min(per_tenant - 20, rng.randrange(max(per_tenant, 1))))
            began = time.perf_counter()
            response = client.get("/api/v1/tasks", params=params, headers=headers)
            if variant == 4 and response.json().get("next_cursor"):
                response = client.get("/api/v1/tasks", params={"limit": 20, "cursor": response.json()["next_cursor"]},
                                      headers=headers)
            elapsed = time.perf_counter() - began
            assert response.status_code == 200, response.text
            if i >= WARM_UP:
                samples.append(elapsed * 1000)
    samples.sort()
    return {"p50": round(statistics.median(samples), 2), "p99": round(samples[int(len(samples) * 0.99) - 1], 2)}


async def store_latencies(bootstrap: str, prefix: str, dsn: str, tasks_now: int) -> dict[str, float]:
    """The same queries through TaskStore in this process: the store's share of a list request."""
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=PARTITIONS),
                        store=StoreSettings(dsn=dsn))
    rng = random.Random(16)
    per_tenant = tasks_now // TENANTS
    samples: list[float] = []
    async with open_store(settings, index=False) as store:
        for i in range(REQUESTS + WARM_UP):
            tenant = rng.randrange(TENANTS)
            variant = i % 5
            kwargs: dict[str, Any] = {"limit": 20}
            if variant == 1:
                kwargs["status"] = TaskStatus.FAILED
            elif variant == 2:
                kwargs["session_id"] = f"session-{tenant:03d}-{rng.randrange(SESSIONS)}"
            elif variant == 3:
                kwargs["offset"] = max(0, min(per_tenant - 20, rng.randrange(max(per_tenant, 1))))
            began = time.perf_counter()
            page = await store.tasks.list_tasks(f"tenant-{tenant:03d}", **kwargs)
            if variant == 4 and page.next_cursor:
                await store.tasks.list_tasks(f"tenant-{tenant:03d}", limit=20, cursor=page.next_cursor)
            if i >= WARM_UP:
                samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"p50": round(statistics.median(samples), 2), "p99": round(samples[int(len(samples) * 0.99) - 1], 2)}


def rocksdb_cache_mb(processor: Service) -> float:
    """The processor's RocksDB caches, memtables included (its gauge, set by a timer: waited for)."""
    url = processor.health_url.replace("/health", "/metrics")

    def read() -> tuple[float] | None:  # a tuple: 0.0 is an answer too
        found = [float(value) for labels, value in re.findall(
            r'^agentwire_processor_table_memory_bytes\{([^}]*)\} (\S+)$', httpx.get(url, timeout=5).text, re.M)
            if 'kind="cache"' in labels]
        return (round(sum(found) / 2**20, 2),) if found else None

    return float(eventually(read, 30, "the processor's table memory gauge")[0])


def restart_to_ready(service: Service, limit_s: float = 120) -> float:
    service.stop(signal.SIGTERM)
    began = time.monotonic()
    service.start()
    eventually(service._ready, limit_s, f"{service.name} ready")  # noqa: SLF001 - the stack's own probe
    return round(time.monotonic() - began, 2)


def main() -> None:
    figures: dict[str, object] = {}
    with kafka_broker(PARTITIONS) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-state-") as workdir:
        keys = Path(workdir) / "keys.yaml"
        keys.write_text(yaml.safe_dump({"keys": [
            {"name": f"bench-{t}", "tenant": f"tenant-{t:03d}", "sha256": hash_key(key_of(t))} for t in range(TENANTS)
        ]}))
        stack = Stack(bootstrap, Path(workdir), partitions=PARTITIONS, extra_env={
            "ENVIRONMENT": "test",
            "AGENTWIRE_AUTH__KEYS_FILE": str(keys),
            "AGENTWIRE_RATE_LIMITS__PER_MINUTE": "1000000",
        })
        for name, script in [("processor", "agentwire-processor"), ("runner", "agentwire-runner"),
                             ("ingest", "agentwire-ingest"), ("edge", "agentwire-edge")]:
            stack.add(name, script)
        try:
            stack.start_all()
            topics = Topics(stack.prefix)
            base = stack.services["ingest"].health_url.removesuffix("/health")
            written = 0
            for level in LEVELS:
                if level > written:
                    began = time.perf_counter()
                    rate = asyncio.run(write_tasks(bootstrap, topics, written, level - written))
                    figures[f"state_write_per_s_to_{level}"] = round(rate)
                    # the store indexes while the processor's rows are written: timed from the first record
                    asyncio.run(write_processor_rows(bootstrap, stack.prefix, written, level - written))
                    asyncio.run(wait_indexed(stack.dsn, bootstrap, topics.task_state))
                    figures[f"state_index_per_s_to_{level}"] = round((level - written) / (time.perf_counter() - began))
                    asyncio.run(settle(stack.dsn))
                    written = level
                tag = f"{level // 1000}k" if level else "0"
                latency = list_latencies(base, written)
                figures[f"list_p50_ms_at_{tag}"] = latency["p50"]
                figures[f"list_p99_ms_at_{tag}"] = latency["p99"]
                inside = asyncio.run(store_latencies(bootstrap, stack.prefix, stack.dsn, written))
                figures[f"store_list_p50_ms_at_{tag}"] = inside["p50"]
                figures[f"store_list_p99_ms_at_{tag}"] = inside["p99"]
                figures[f"load_average_at_{tag}"] = round(os.getloadavg()[0], 1)
                # the processor reads its history only when it starts: restart it, then measure. The
                # first restart recovers every record written since its own (cold: like a new pod);
                # the second only what came after (warm: a restart that kept its data directory).
                processor = stack.services["processor"]
                # (cold recovery replays two changelog records per finished workflow: minutes at 1 M)
                figures[f"restart_to_ready_s_processor_cold_at_{tag}"] = restart_to_ready(processor, 1800)
                figures[f"restart_to_ready_s_processor_warm_at_{tag}"] = restart_to_ready(processor)
                for name, service in stack.services.items():
                    figures[f"rss_mb_{name}_at_{tag}"] = rss_mb(service)
                figures[f"processor_rocksdb_cache_mb_at_{tag}"] = rocksdb_cache_mb(processor)
                # and at a fixed point after ready (a measurement's definition, not a wait for something):
                # what a restart allocates for a moment is given back by then
                time.sleep(SETTLED_AFTER_S)
                figures[f"rss_mb_processor_settled_at_{tag}"] = rss_mb(processor)
            for name in ("ingest", "edge"):
                figures[f"restart_to_ready_s_{name}_at_{written // 1000}k"] = restart_to_ready(stack.services[name])
        finally:
            stack.stop()
            stack.delete_topics()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
