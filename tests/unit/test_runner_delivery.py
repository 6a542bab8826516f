"""A play whose sends fail is replayed until Kafka acknowledges every event (no broker needed).

However many sends fail while Kafka is away: an outage longer than the producer's request
timeout fails every send of every play, and a play that gave up after a few replays stranded its
task (QUEUED or RUNNING until the processor timed it out) until the runner restarted.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, LeaderNotAvailableError, MessageSizeTooLargeError

from agentwire.runner import worker as worker_module
from agentwire.runner.worker import RunnerWorker
from agentwire.schema import TaskSubmitted
from agentwire.service.settings import Settings


class FlakyProducer:
    """Acknowledges sends, except the first ``failures`` ones, which fail like a leader election."""

    def __init__(self, failures: int, error: type[KafkaError] = LeaderNotAvailableError) -> None:
        self.failures = failures
        self.error = error
        self.sent: list[dict[str, object]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(self.error())
        else:
            future.set_result(None)
        data = orjson.loads(value)
        self.sent.extend(data if isinstance(data, list) else [data])  # a frame holds several events
        return future


@pytest.mark.parametrize("failures", [0, 3, 12])
async def test_a_play_is_finished_only_when_every_event_is_acknowledged(
    failures: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_BACKOFF_S", 0.0)
    worker = RunnerWorker(Settings(environment="test"))
    producer = FlakyProducer(failures)
    worker._producer = producer  # type: ignore[assignment]
    task = TaskSubmitted(workflow_id="task-r", tenant="t", query="q", session_id="s", context={"speed": 1000})
    tp = TopicPartition(worker._topics.tasks, 0)

    worker._start(task, tp, offset=7)
    _, play, _ = worker._plays["task-r"]
    await asyncio.wait_for(play, 10)

    assert worker._tracker.committable()[tp].offset == 8
    starts = [e for e in producer.sent if e["type"] == "WORKFLOW_STARTED"]
    assert len(starts) == (2 if failures else 1)
    assert producer.sent[-1]["type"] == "WORKFLOW_COMPLETED"
    if failures:  # the replay emitted the very same ids, so the processor drops what it already has
        second = producer.sent.index(starts[1])
        first_ids = [e["event_id"] for e in producer.sent[:second]]
        assert [e["event_id"] for e in producer.sent[second : second + len(first_ids)]] == first_ids


async def test_a_send_kafka_will_never_take_ends_the_play_instead_of_replaying_it_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_BACKOFF_S", 0.0)
    worker = RunnerWorker(Settings(environment="test"))
    producer = FlakyProducer(1, MessageSizeTooLargeError)
    worker._producer = producer  # type: ignore[assignment]
    task = TaskSubmitted(workflow_id="task-big", tenant="t", query="q", session_id="s", context={"speed": 1000})
    tp = TopicPartition(worker._topics.tasks, 0)

    worker._start(task, tp, offset=3)
    _, play, _ = worker._plays["task-big"]
    await asyncio.wait_for(play, 10)

    committable = worker._tracker.committable()
    assert tp not in committable or committable[tp].offset <= 3  # left to a restart, never committed past
    assert [e["type"] for e in producer.sent].count("WORKFLOW_STARTED") == 1
