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
    """Fails every send of the first ``failed_plays`` attempts of a play (Kafka away), then acknowledges."""

    def __init__(self, failed_plays: int, error: type[KafkaError] = LeaderNotAvailableError) -> None:
        self.failed_plays = failed_plays
        self.error = error
        self.sent: list[dict[str, object]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        data = orjson.loads(value)
        self.sent.extend(data if isinstance(data, list) else [data])  # a frame holds several events
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.starts() <= self.failed_plays:
            future.set_exception(self.error())
        else:
            future.set_result(None)
        return future

    def starts(self) -> int:
        return sum(e["type"] == "WORKFLOW_STARTED" for e in self.sent)


async def play_to_its_end(producer: FlakyProducer, workflow_id: str, offset: int,
                          monkeypatch: pytest.MonkeyPatch) -> RunnerWorker:
    monkeypatch.setattr(worker_module, "RETRY_BACKOFF_S", 0.0)
    worker = RunnerWorker(Settings(environment="test"))
    worker._producer = producer  # type: ignore[assignment]
    task = TaskSubmitted(workflow_id=workflow_id, tenant="t", query="q", session_id="s", context={"speed": 1000})
    worker._start(task, TopicPartition(worker._topics.tasks, 0), offset=offset)
    _, play, _ = worker._plays[workflow_id]
    await asyncio.wait_for(play, 10)
    return worker


@pytest.mark.parametrize("failed_plays", [0, 1, 8])
async def test_a_play_is_finished_only_when_every_event_is_acknowledged(
    failed_plays: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = FlakyProducer(failed_plays)
    worker = await play_to_its_end(producer, "task-r", 7, monkeypatch)

    assert worker._tracker.committable()[TopicPartition(worker._topics.tasks, 0)].offset == 8
    assert producer.starts() == failed_plays + 1  # 8: more than the five tries a play once had
    assert producer.sent[-1]["type"] == "WORKFLOW_COMPLETED"
    starts = [i for i, e in enumerate(producer.sent) if e["type"] == "WORKFLOW_STARTED"]
    if failed_plays:  # each replay emitted the very same ids, so the processor drops what it already has
        first_ids = [e["event_id"] for e in producer.sent[:starts[1]]]
        last = producer.sent[starts[-1]:]
        assert [e["event_id"] for e in last[:len(first_ids)]] == first_ids


async def test_a_send_kafka_will_never_take_ends_the_play_instead_of_replaying_it_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FlakyProducer(1, MessageSizeTooLargeError)
    worker = await play_to_its_end(producer, "task-big", 3, monkeypatch)

    tp = TopicPartition(worker._topics.tasks, 0)
    committable = worker._tracker.committable()
    assert tp not in committable or committable[tp].offset <= 3  # left to a restart, never committed past
    assert producer.starts() == 1
