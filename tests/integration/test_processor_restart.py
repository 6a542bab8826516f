"""A processor restarted in front of a backlog reads every record of it.

faust-streaming 0.15.3 resumes the stream partitions when a recovery completes *before* it seeks
them to their committed offsets, and only then resumes the flow, which clears the streams' queues
(``Recovery.on_recovery_completed``). Records fetched in that window either wait in a queue that is
then cleared, or keep advancing faust's read offset after the seek, so the same offsets fetched again
are dropped as already read: records of an owned partition that no agent ever sees (in ``make chaos``:
the first records of plays submitted while the processor was down; their later events were
dead-lettered, or the whole play was lost and the task timed out). Upstream: faust-streaming issues
216 (PR 217 reordered one recovery path), 221 and 596.

The window exists when the worker had to recover its tables (the fetcher runs during the recovery;
here the killed worker's disk is lost too). The test holds it open for a second (the fault hook
``processor.fault_seek_hold_s``) and restarts the worker in front of a backlog: 12,000 raw records
and 3,000 submitted tasks, which the admit agent forwards one delivery at a time, so its queue is
full when faust clears it. Every
workflow of the raw backlog must come out whole (every seq from 1 to its last), every task must be
admitted, and the processor must not have logged a skip.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agentwire.kafka import ensure_topics
from agentwire.schema import TaskSubmitted, encode
from agentwire.service.settings import KafkaSettings
from tests.support.raw import workflow_events
from tests.support.stack import Stack

PARTITIONS = 12


async def produce(bootstrap: str, topic: str, prefix: str, workflows: int, events: int) -> dict[str, int]:
    """Raw records of ``workflows`` plays; the number of outputs each becomes."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024, acks="all")
    await producer.start()
    outputs: dict[str, int] = {}
    try:
        for w in range(workflows):
            workflow_id = f"{prefix}-{w:05d}"
            records, outputs[workflow_id] = workflow_events(workflow_id, events)
            for value in records:
                await producer.send(topic, value, key=workflow_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return outputs


async def submit_tasks(bootstrap: str, topic: str, count: int) -> set[str]:
    """TaskSubmitted records on the tasks topic (no runner plays them): their workflow ids."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all")
    await producer.start()
    ids = {f"queued-{n:05d}" for n in range(count)}
    try:
        for workflow_id in sorted(ids):
            task = TaskSubmitted(workflow_id=workflow_id, tenant="t", query="q", session_id="s")
            await producer.send(topic, encode(task), key=workflow_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return ids


async def admitted(bootstrap: str, topic: str, wanted: set[str], within_s: float) -> set[str]:
    """The wanted workflows whose admission record reached the raw topic within ``within_s`` seconds."""
    found: set[str] = set()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        while found != wanted and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key and record.key.decode() in wanted and b'"_TASK_ADMITTED"' in record.value:
                        found.add(record.key.decode())
    finally:
        await consumer.stop()
    return found


async def wait_for_outputs(bootstrap: str, topic: str, wanted: dict[str, int], within_s: float) -> dict[str, set[int]]:
    """Read the events topic until every wanted workflow has seq 1..N; what was seen when it stops."""
    seen: dict[str, set[int]] = defaultdict(set)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        missing = set(wanted)
        while missing and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = orjson.loads(record.value)
                    seen[event["workflow_id"]].add(event["seq"])
            missing = {w for w in missing if seen[w] != set(range(1, wanted[w] + 1))}
    finally:
        await consumer.stop()
    return seen


def test_a_restarted_processor_reads_its_whole_backlog(kafka_bootstrap: str, tmp_path: Path) -> None:
    # the window stays open for a second after each seek, whatever the machine's load
    stack = Stack(kafka_bootstrap, tmp_path, partitions=PARTITIONS,
                  extra_env={"AGENTWIRE_PROCESSOR__FAULT_SEEK_HOLD_S": "1.0"})
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=stack.prefix, partitions=PARTITIONS)
    topics = kafka.topics
    asyncio.run(ensure_topics(kafka))
    processor = stack.add("processor", "agentwire-processor")
    try:
        processor.start()
        processor.wait_ready()
        # committed offsets, rows and changelogs exist before the kill: the restart recovers
        before = asyncio.run(produce(kafka_bootstrap, topics.events_raw, "before", 24, 20))
        seen = asyncio.run(wait_for_outputs(kafka_bootstrap, topics.events, before, 60))
        assert all(seen[w] == set(range(1, n + 1)) for w, n in before.items()), "the first plays never came out"
        processor.kill()
        # its disk is lost too (a pod moved without its volume): the new worker must recover the
        # tables from their changelogs, so faust's fetcher runs while the recovery completes
        shutil.rmtree(Path(processor.env["AGENTWIRE_PROCESSOR__DATA_DIR"]))

        backlog = asyncio.run(produce(kafka_bootstrap, topics.events_raw, "backlog", 300, 40))
        queued = asyncio.run(submit_tasks(kafka_bootstrap, topics.tasks, 3000))  # admitted one by one: slow
        processor.start()
        seen = asyncio.run(wait_for_outputs(kafka_bootstrap, topics.events, backlog, 60))
        missed = queued - asyncio.run(admitted(kafka_bootstrap, topics.events_raw, queued, 30))
        broken = {w: sorted(set(range(1, n + 1)) - seen[w])[:5] for w, n in backlog.items()
                  if seen[w] != set(range(1, n + 1))}
        log = processor.log_path.read_text(errors="replace")
        skips = [line for line in log.splitlines() if "records skipped:" in line]
        assert not broken, f"{len(broken)} of {len(backlog)} plays lost events (first missing seqs): " \
                           f"{dict(list(broken.items())[:5])}; the processor logged: {skips[:5]}"
        assert not missed, f"{len(missed)} of {len(queued)} submitted tasks never admitted; logged: {skips[:5]}"
        assert not skips, skips[:5]
    finally:
        stack.stop()
        stack.delete_topics()
