"""Processor throughput and CPU cost per event, five ways, one broker, one run.

1. ``noop``: a no-op faust agent (tests/bench/noop_agent.py, the processor's own faust
   settings) reads N preloaded raw records: faust's own cost per record.
2. ``preloaded``: one ``agentwire-processor`` sequences the same kind of N records (one
   event per record, realistic agent runs); ``processor_noop_ratio`` compares the two
   per processor CPU-second.
3. ``two workers``: two processors share the 12 partitions of a preload: combined rate.
4. ``trickle``: the no-op agent again, fed one record at a time at the end-to-end rate
   (BENCH_E2E_RATE records/s for BENCH_E2E_SECONDS, many workflows interleaved, sent through a
   producer set up as the runner's): what faust alone costs per record at that pace, the
   ceiling of phase 5 with one event per record (``processor_e2e_noop_ratio``).
5. ``end to end``: the runner plays LLM-heavy tasks (standard mode, one word per chunk)
   submitted at BENCH_E2E_RATE events/s for BENCH_E2E_SECONDS; the processor's CPU per
   sequenced event with the runner's frames, and the frame size distribution read back from
   the raw topic.

CPU is each process's utime + stime from /proc, from its first output to its last. Prints one
JSON object on its last line. ``python -m tests.bench.processor`` (AGENTWIRE_TEST_KAFKA=host:port
uses a running broker). BENCH_PROCESSOR_PHASES=e2e runs only the end-to-end phase (names: noop,
preloaded, two, trickle, e2e); BENCH_PROCESSOR_PROFILE=path records the end-to-end processor with py-spy
(``python -m tests.bench.profile path`` prints its top); BENCH_PROCESSOR_ENV="KEY=VALUE ..." passes
settings to the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agentwire.kafka import ensure_topics, make_producer
from agentwire.runner.scenarios import steps_for
from agentwire.runner.script import Options, rng_for
from agentwire.schema import TaskSubmitted, encode
from agentwire.service.settings import KafkaSettings
from tests.bench.proc import cpu_seconds
from tests.bench.profile import recording
from tests.support.broker import kafka_broker
from tests.support.raw import workflow_events
from tests.support.stack import Service, Stack
from tests.support.wait import eventually

WORKFLOWS = int(os.environ.get("BENCH_WORKFLOWS", "600"))
PER_WORKFLOW = int(os.environ.get("BENCH_EVENTS_PER_WORKFLOW", "100"))
E2E_RATE = int(os.environ.get("BENCH_E2E_RATE", "1000"))
E2E_SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "30"))
PHASES = set(os.environ.get("BENCH_PROCESSOR_PHASES", "noop,preloaded,two,trickle,e2e").split(","))
PROFILE = os.environ.get("BENCH_PROCESSOR_PROFILE", "")
# settings for the services under test, e.g. AGENTWIRE_PROCESSOR__FETCH_MIN_BYTES=16384 (the stack drops
# AGENTWIRE_* from its own environment): BENCH_PROCESSOR_ENV="KEY=VALUE KEY=VALUE"
EXTRA_ENV = dict(item.split("=", 1) for item in os.environ.get("BENCH_PROCESSOR_ENV", "").split())
PARTITIONS = 12
LLM_HEAVY = {"chunk_words": 1}  # every word of every answer its own LLM_PARTIAL


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


async def end_total(consumer: AIOKafkaConsumer, topic: str) -> int:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return sum((await consumer.end_offsets(tps)).values())


async def measure(bootstrap: str, topic: str, expected: int, pids: list[int], limit_s: float = 600
                  ) -> tuple[float, int, float]:
    """From the first record on ``topic`` until ``expected`` records: (wall s, records, CPU s of ``pids``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    started = time.monotonic()
    first = None
    cpu_first = 0.0
    total = 0
    try:
        while time.monotonic() - started < limit_s:
            total = await end_total(consumer, topic)
            now = time.monotonic()
            if total and first is None:
                first, cpu_first = now, sum(cpu_seconds(pid) for pid in pids)
            if total >= expected:
                assert first is not None
                return now - first, total, sum(cpu_seconds(pid) for pid in pids) - cpu_first
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    raise RuntimeError(f"only {total} of {expected} records after {limit_s}s")


class Run:
    """One phase: a fresh topic prefix on the shared broker, deleted afterwards."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.stack = Stack(bootstrap, workdir / uuid.uuid4().hex[:6], partitions=PARTITIONS, extra_env=EXTRA_ENV)
        self.stack.workdir.mkdir()
        self.kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=self.stack.prefix, partitions=PARTITIONS)
        asyncio.run(ensure_topics(self.kafka))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *_: object) -> None:
        self.stack.stop()
        self.stack.delete_topics()


def noop(bootstrap: str, workdir: Path) -> dict[str, float]:
    """The no-op agent through a preloaded backlog."""
    with Run(bootstrap, workdir) as run:
        raw, _ = asyncio.run(preload(bootstrap, run.kafka.topics.events_raw))
        agent = start_noop_agent(run, raw)
        return noop_figures(agent)


def noop_trickle(bootstrap: str, workdir: Path) -> dict[str, float]:
    """The no-op agent fed one record at a time at the end-to-end rate (E2E_RATE for E2E_SECONDS), as the
    runner's plays feed the processor: what faust alone costs per record at that pace."""
    with Run(bootstrap, workdir) as run:
        records = trickle_records(int(E2E_RATE * E2E_SECONDS))
        agent = start_noop_agent(run, len(records))
        wait_for_line(agent, "NOOP READY")
        asyncio.run(paced(bootstrap, run.kafka.topics.events_raw, records, E2E_RATE))
        return noop_figures(agent)


def start_noop_agent(run: Run, expected: int) -> Service:
    agent = Service("noop", [sys.executable, "-m", "tests.bench.noop_agent"],
                    run.stack.env(BENCH_NOOP_EXPECTED=str(expected),
                                  AGENTWIRE_PROCESSOR__DATA_DIR=str(run.stack.workdir / "noop-data")), "",
                    run.stack.workdir / "noop.log")
    run.stack.services["noop"] = agent
    agent.start()
    return agent


def wait_for_line(agent: Service, marker: str, limit_s: float = 600) -> str:
    """The first line of the agent's log that holds ``marker`` (faust may put terminal escapes before it)."""

    def line() -> str | None:
        found = next((x for x in agent.log_path.read_text(errors="replace").splitlines() if marker in x), None)
        if found is None and agent.process is not None and agent.process.poll() is not None:
            raise RuntimeError(f"no-op agent exited:\n{agent.tail()}")
        return found

    return eventually(line, limit_s, lambda: f"{marker!r} from the no-op agent; log:\n{agent.tail()}")


def noop_figures(agent: Service) -> dict[str, float]:
    figures = json.loads(wait_for_line(agent, "NOOP {").split("NOOP ", 1)[1])
    return {"noop_records_per_cpu_s": round((figures["records"] - 1) / figures["cpu_s"]),
            "noop_records_per_s": round((figures["records"] - 1) / figures["wall_s"])}


def trickle_records(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` raw records (key, value) of count / PER_WORKFLOW workflows, interleaved as concurrent plays
    emit them: every workflow's first event, then every workflow's second, and so on."""
    workflows = [(f"trickle-{w:06d}".encode(), workflow_events(f"trickle-{w:06d}", PER_WORKFLOW)[0])
                 for w in range(max(count // PER_WORKFLOW, 1))]
    return [(key, records[n]) for n in range(PER_WORKFLOW) for key, records in workflows][:count]


async def paced(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], rate_per_s: float) -> None:
    """Send (key, value) records one by one at an even ``rate_per_s`` through a producer set up as the
    runner's (and ingest's): acks from every in-sync replica, 1 ms linger."""
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap))
    await producer.start()
    try:
        started = time.monotonic()
        for n, (key, value) in enumerate(records):
            delay = started + n / rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace itself, not a wait for a condition
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def preloaded(bootstrap: str, workdir: Path, workers: int) -> dict[str, float]:
    with Run(bootstrap, workdir) as run:
        raw, expected = asyncio.run(preload(bootstrap, run.kafka.topics.events_raw))
        processors = [run.stack.add(f"processor-{n}", "agentwire-processor") for n in range(workers)]
        for processor in processors:
            processor.start()
        pids = [p.process.pid for p in processors if p.process is not None]
        seconds, total, cpu = asyncio.run(measure(bootstrap, run.kafka.topics.events, expected, pids))
    return {"events": raw, "outputs": total, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
            "events_per_s": round(raw / seconds), "events_per_cpu_s": round(raw / cpu)}


def llm_heavy_task(n: int) -> TaskSubmitted:
    return TaskSubmitted(workflow_id=f"task-bench-{n:06d}-{uuid.uuid4().hex[:6]}", tenant="bench",
                         query="Research AI trends and create a summary of the findings", session_id="bench",
                         mode="standard", context=LLM_HEAVY)


def events_of(task: TaskSubmitted) -> int:
    return len(steps_for(task, Options.from_task(task, 1.0), rng_for(task)))


async def frame_sizes(bootstrap: str, topic: str) -> Counter[int]:
    """How many events each record of the raw topic holds (a frame is a JSON array)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    sizes: Counter[int] = Counter()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining:
            if time.monotonic() > deadline:
                left = sorted(tp.partition for tp in remaining)
                raise RuntimeError(f"raw topic not read to its end in 120 s: partitions {left}")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.value and record.value[:1] == b"[":
                        sizes[len(orjson.loads(record.value))] += 1
                    else:
                        sizes[1] += 1
            # every partition's position, not only those that brought records this time (a run once waited
            # here for 15 min, cause not found; the deadline above turns such a stall into a failure)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return sizes


def end_to_end(bootstrap: str, workdir: Path) -> dict[str, object]:
    with Run(bootstrap, workdir) as run:
        per_task = events_of(llm_heavy_task(0))
        tasks = [llm_heavy_task(n) for n in range(int(E2E_RATE * E2E_SECONDS / per_task))]
        emitted = sum(events_of(task) for task in tasks)
        stack = run.stack
        processor = stack.add("processor", "agentwire-processor")
        runner = stack.add("runner", "agentwire-runner")
        stack.start_all()
        assert processor.process is not None and runner.process is not None
        pids = [processor.process.pid]
        topics = run.kafka.topics
        # every raw event, + PROGRESS per AGENT_COMPLETED (3 agents) + STREAM_END
        expected = emitted + len(tasks) * 4

        async def drive() -> tuple[float, int, float]:
            measuring = asyncio.create_task(measure(bootstrap, topics.events, expected, pids))
            runner_cpu = cpu_seconds(runner.process.pid)  # type: ignore[union-attr]
            await paced(bootstrap, topics.tasks, [(t.workflow_id.encode(), encode(t)) for t in tasks],
                        len(tasks) / E2E_SECONDS)
            result = await measuring
            runner_cpus.append(cpu_seconds(runner.process.pid) - runner_cpu)  # type: ignore[union-attr]
            return result

        runner_cpus: list[float] = []
        with recording(pids[0], Path(PROFILE)) if PROFILE else contextlib.nullcontext():
            seconds, total, cpu = asyncio.run(drive())
        sizes = asyncio.run(frame_sizes(bootstrap, topics.events_raw))
    records = sum(sizes.values())
    events = sum(size * count for size, count in sizes.items())
    ordered = sorted(size for size, count in sizes.items() for _ in range(count))
    return {
        "processor_events_per_cpu_s": round(emitted / cpu),
        "e2e_pipeline_events_per_s": round(emitted / seconds),
        "e2e_pipeline_tasks": len(tasks),
        "e2e_pipeline_events": emitted,
        "e2e_pipeline_outputs": total,
        "e2e_pipeline_processor_cpu_s": round(cpu, 2),
        "e2e_pipeline_runner_cpu_s": round(runner_cpus[0], 2),
        "frame_events_mean": round(events / records, 3) if records else None,
        "frame_events_p50": statistics.median(ordered) if ordered else None,
        "frame_events_p99": ordered[int(len(ordered) * 0.99) - 1] if ordered else None,
        "frame_events_max": max(ordered) if ordered else None,
        "frame_share_of_events_in_frames": round(sum(s * c for s, c in sizes.items() if s > 1) / events, 3)
        if events else None,
        "frame_sizes": {str(size): sizes[size] for size in sorted(sizes)},
    }


def main() -> None:
    figures: dict[str, object] = {}
    with kafka_broker(PARTITIONS) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-proc-") as tmp:
        workdir = Path(tmp)
        base = noop(bootstrap, workdir) if "noop" in PHASES else None
        one = preloaded(bootstrap, workdir, workers=1) if "preloaded" in PHASES else None
        two = preloaded(bootstrap, workdir, workers=2) if "two" in PHASES else None
        floor = noop_trickle(bootstrap, workdir) if "trickle" in PHASES else None
        if "e2e" in PHASES:
            figures.update(end_to_end(bootstrap, workdir))
    if base and one:
        figures["processor_noop_ratio"] = round(one["events_per_cpu_s"] / base["noop_records_per_cpu_s"], 3)
    if one:
        figures.update({"processor_preloaded_events_per_cpu_s": one["events_per_cpu_s"],
                        "processor_preloaded_events_per_s": one["events_per_s"],
                        "processor_preloaded_events": one["events"]})
    if base:
        figures.update({"processor_noop_records_per_cpu_s": base["noop_records_per_cpu_s"],
                        "processor_noop_records_per_s": base["noop_records_per_s"]})
    if floor:
        figures.update({"processor_noop_trickle_records_per_cpu_s": floor["noop_records_per_cpu_s"],
                        "processor_noop_trickle_records_per_s": floor["noop_records_per_s"]})
        if "processor_events_per_cpu_s" in figures:
            figures["processor_e2e_noop_ratio"] = round(
                int(figures["processor_events_per_cpu_s"]) / floor["noop_records_per_cpu_s"], 3)  # type: ignore[call-overload]
    if two:
        figures.update({"processor_two_workers_events_per_s": two["events_per_s"],
                        "processor_two_workers_events_per_cpu_s": two["events_per_cpu_s"]})
    figures.update({"load_average_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count()})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
