"""Poison records on every topic: malformed bytes, a wrong schema, a record for an unknown workflow.

Each ends in the dead-letter topic (tasks, control, raw events: the processor and the runner
dead-letter what they cannot decode) or is skipped with a metric (task-state in the store's
indexer, events in the edge), and the pipeline keeps going: a task submitted after
the poison completes with a complete stream, and the services are still up.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agentwire.schema import Topics
from tests.integration.flows import Reader, check_stream, metric, submit, wait_status
from tests.support.sse import read_stream
from tests.support.stack import Stack
from tests.support.wait import eventually

MALFORMED = b"\x00\xffnot json{"
WRONG_SCHEMA = b'{"kind": "task_submitted", "workflow_id": 42}'
DEEP = b"[" * 5000 + b"]" * 5000  # nested past orjson's limit: a decode error, not a crash
BAD_KEY = b"\xff\xfe-not-utf8"


def poison(topic: str, workflow_id: str) -> tuple[list[tuple[bytes, bytes | None]], set[bytes | None]]:
    """The poison records for one topic, and the values of those that must be dead-lettered."""
    malformed = MALFORMED + uuid.uuid4().hex.encode()  # unique: earlier runs left theirs in the DLQ
    wf = workflow_id.encode()
    if topic == "tasks":
        records = [(BAD_KEY, malformed), (b"k", WRONG_SCHEMA), (b"k", DEEP)]
        return records, {malformed, WRONG_SCHEMA, DEEP}
    if topic == "control":
        cancel_unknown = b'{"kind": "cancel", "workflow_id": "%s"}' % wf  # absorbed: no such task
        records = [(BAD_KEY, malformed), (b"k", b'{"kind": "explode"}'), (wf, cancel_unknown)]
        return records, {malformed, b'{"kind": "explode"}'}
    if topic == "events.raw":
        mismatch = b'{"event_id": "%s:1", "workflow_id": "other", "type": "PROGRESS"}' % wf
        # a runner's event for a workflow never submitted (or past its lifetime): never a new workflow
        unknown = b'{"event_id": "%s:5", "workflow_id": "%s", "type": "AGENT_STARTED"}' % (wf, wf)
        records = [(BAD_KEY, malformed), (b"k", b'{"type": 7}'), (wf, mismatch), (wf, unknown)]
        return records, {malformed, b'{"type": 7}', mismatch, unknown}
    if topic == "events":
        unknown = b'{"workflow_id": "task-nobody", "type": "AGENT_STARTED", "seq": 1, "event_id": "e",' \
                  b' "timestamp": "2026-01-01T00:00:00Z"}'
        return [(BAD_KEY, malformed), (wf, b'{"seq": "one"}'), (b"task-nobody", unknown)], set()
    assert topic == "task-state"
    bogus = b'{"task": {"workflow_id": "%s"}, "status": "TASK_STATUS_BOGUS"}' % wf
    return [(BAD_KEY, malformed), (wf, bogus), (BAD_KEY, None), (wf, None)], set()


async def produce(bootstrap: str, prefix: str, suffix: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(f"{prefix}.{suffix}", value, key=key)
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, topic: str, source: str, values: set[bytes | None], services: set[str],
                       wait_s: float = 30.0) -> set[tuple[bytes | None, str]]:
    """(value, service) of the DLQ records from ``source`` whose value is one of ``values``.

    Reads until each value was dead-lettered by each of ``services``, or the deadline.
    """
    wanted = {(value, service) for value in values for service in services}
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: set[tuple[bytes | None, str]] = set()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("source_topic") == source and record.value in values:
                        found.add((record.value, headers["service"]))
            if wanted <= found:
                break
    finally:
        await consumer.stop()
    return found


def still_works(stack: Stack) -> None:
    workflow_id = submit(stack, "simple")
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id}, timeout=60)
    check_stream(frames)
    wait_status(stack, workflow_id, "TASK_STATUS_COMPLETED", timeout=10)
    for service in stack.services.values():
        assert service.process is not None and service.process.poll() is None, f"{service.name} died"


@pytest.mark.parametrize("suffix", ["tasks", "control", "events.raw"])
def test_poison_on_a_command_or_raw_topic_goes_to_the_dlq(fast_stack: Stack, suffix: str) -> None:
    records, doomed = poison(suffix, f"task-unknown-{uuid.uuid4().hex}")
    asyncio.run(produce(fast_stack.bootstrap, fast_stack.prefix, suffix, records))
    # the runner reads tasks and control too, and dead-letters on its own
    services = {"processor", "runner"} if suffix in ("tasks", "control") else {"processor"}
    found = asyncio.run(dead_letters(fast_stack.bootstrap, Topics(fast_stack.prefix).dlq,
                                     f"{fast_stack.prefix}.{suffix}", doomed, services))
    assert found == {(value, service) for value in doomed for service in services}
    still_works(fast_stack)


def test_poison_on_task_state_is_skipped_by_the_store_with_a_metric(fast_stack: Stack) -> None:
    """The store's indexer reads task-state (ingest and edge read tasks through it)."""
    name = "agentwire_store_records_skipped_total"
    before = metric(fast_stack.base_url, name)
    unknown = f"task-unknown-{uuid.uuid4().hex}"
    asyncio.run(produce(fast_stack.bootstrap, fast_stack.prefix, "task-state", poison("task-state", unknown)[0]))
    # malformed bytes, an unknown status, a tombstone whose key is not UTF-8; the other tombstone deletes nothing
    eventually(lambda: metric(fast_stack.base_url, name) >= before + 3, 20, "the indexer counted the poison")
    assert httpx.get(f"{fast_stack.base_url}/api/v1/tasks/{unknown}", timeout=10).status_code == 404
    still_works(fast_stack)


def test_poison_on_the_events_topic_is_skipped_by_the_edge_with_a_metric(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "simple", speed=1)
    name = "agentwire_edge_undecodable_events_total"
    before = metric(fast_stack.base_url, name)
    reader = Reader(fast_stack, workflow_id, timeout=60)
    reader.start()
    eventually(lambda: reader.streamed >= 1, 30, "the stream started")  # the edge tails the partition now
    asyncio.run(produce(fast_stack.bootstrap, fast_stack.prefix, "events", poison("events", workflow_id)[0]))
    check_stream(reader.result(timeout=60))
    eventually(lambda: metric(fast_stack.base_url, name) >= before + 1, 20, "the edge counted the poison")
    still_works(fast_stack)
