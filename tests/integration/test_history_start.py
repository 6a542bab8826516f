"""Where a stream starts reading a workflow that has no first offset yet (real Kafka).

Regression test for a stream that hung forever with no event: the time search found
nothing, the fallback end offset was read AFTER it, and the workflow's first events,
written in between, were skipped; the session then waited for a seq 1 it had passed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agentwire.kafka import ensure_topics, make_producer
from agentwire.kafka.history import EventLog
from agentwire.schema import TaskState, TaskSubmitted
from agentwire.service.settings import KafkaSettings
from tests.support.stack import _delete_prefixed


def test_events_written_during_the_time_search_are_not_skipped(kafka_bootstrap: str) -> None:
    asyncio.run(_written_during_search(kafka_bootstrap))


async def _written_during_search(bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}", partitions=2)
    await ensure_topics(kafka)
    workflow_id = "task-history-start"
    task = TaskSubmitted(workflow_id=workflow_id, tenant="t", query="q", session_id="s")
    state = TaskState(task=task, updated_at=task.created_at)
    log = EventLog(kafka, readers=1)
    producer = make_producer(kafka)
    await log.start()
    await producer.start()
    try:
        partition = log.partition_of(workflow_id)
        empty_end = await log.end_offset(partition)
        real_search = AIOKafkaConsumer.offsets_for_times

        async def search_then_write(self: AIOKafkaConsumer, timestamps: dict[TopicPartition, int]) -> Any:
            found = await real_search(self, timestamps)  # nothing of the workflow exists yet...
            for seq in (1, 2):  # ...and its first events land before the caller's next request
                await producer.send_and_wait(kafka.topics.events, f"seq {seq}".encode(),
                                             key=workflow_id.encode(), partition=partition)
            return found

        AIOKafkaConsumer.offsets_for_times = search_then_write  # type: ignore[method-assign]
        try:
            start = await log.start_offset(state)
        finally:
            AIOKafkaConsumer.offsets_for_times = real_search  # type: ignore[method-assign]
        assert await log.end_offset(partition) == empty_end + 2
        assert start == empty_end, "the first events of the workflow would be skipped"
    finally:
        await producer.stop()
        await log.stop()
        await _delete_prefixed(bootstrap, kafka.topic_prefix)
