"""History reads through the pooled readers (real Kafka): right records, and no garbage left in cycles.

An edge makes several history reads a second for as long as it runs (each new client, each
resume). Whatever one read leaves in a reference cycle waits for a full garbage collection, which
an edge runs rarely (``edge/heap.py``): the 30-minute soak grew the gateway by 1.3 MB a minute that
way, from a new aiokafka ``Assignment`` per read. These tests read many workflows spread over every
partition, abandon some reads half-way, and check both what came back and what was left behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import uuid
from collections.abc import Iterator

from agentwire.kafka import ensure_topics, history, make_producer
from agentwire.kafka.history import EventLog
from agentwire.service.settings import KafkaSettings
from tests.support.stack import _delete_prefixed

WORKFLOWS = 24
EVENTS = 30


def test_reads_spread_over_partitions_return_each_workflows_records(kafka_bootstrap: str) -> None:
    asyncio.run(_reads(kafka_bootstrap, check_garbage=False))


def test_history_reads_leave_no_kafka_objects_in_reference_cycles(kafka_bootstrap: str) -> None:
    asyncio.run(_reads(kafka_bootstrap, check_garbage=True))


@contextlib.contextmanager
def _cyclic_garbage() -> Iterator[collections.Counter[str]]:
    """Count, by type, what became unreachable only through a reference cycle inside the block."""
    found: collections.Counter[str] = collections.Counter()
    gc.collect()
    gc.disable()
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.update(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


async def _reads(bootstrap: str, *, check_garbage: bool) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}", partitions=6)
    await ensure_topics(kafka)
    workflows = [f"task-history-{i}" for i in range(WORKFLOWS)]
    log = EventLog(kafka, readers=2)
    producer = make_producer(kafka)
    await log.start()
    await producer.start()
    try:
        assert len({log.partition_of(w) for w in workflows}) == kafka.partitions, "every partition is read"
        for seq in range(EVENTS):  # interleaved, as a busy topic is
            for workflow_id in workflows:
                await producer.send(kafka.topics.events, f"{workflow_id} {seq}".encode(), key=workflow_id.encode(),
                                    partition=log.partition_of(workflow_id))
        await producer.flush()
        await _read_all(log, workflows)  # warm: metadata, connections, first positions
        with _cyclic_garbage() as garbage:
            await _abandon_reads(log, workflows[::3])
            await _read_all(log, workflows)
            await _read_all(log, list(reversed(workflows)))
        if check_garbage:
            kafka_objects = {name: n for name, n in garbage.items() if name.startswith("aiokafka.")}
            assert kafka_objects == {}, f"left in reference cycles by {3 * WORKFLOWS} reads: {kafka_objects}"
    finally:
        await producer.stop()
        await log.stop()
        await _delete_prefixed(bootstrap, kafka.topic_prefix)


async def _read_all(log: EventLog, workflows: list[str]) -> None:
    async def one(workflow_id: str) -> None:
        values = [r.value async for batch in log.read(workflow_id, 0) for r in batch]
        assert values == [f"{workflow_id} {seq}".encode() for seq in range(EVENTS)]

    await asyncio.gather(*(one(w) for w in workflows))


async def _abandon_reads(log: EventLog, workflows: list[str]) -> None:
    """Reads stopped after their first batch: their partitions stay resumed until a reader is reused."""
    whole, history.READ_BATCH = history.READ_BATCH, 10  # a fetch then holds a part of a partition
    try:
        for workflow_id in workflows:
            async with contextlib.aclosing(log.read(workflow_id, 0)) as batches:
                async for _ in batches:
                    break
    finally:
        history.READ_BATCH = whole
