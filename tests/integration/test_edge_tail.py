"""The edge's live tail on real Kafka (edge/hub.py over edge/tail.py, librdkafka from one thread).

- a subscriber gets every record written after it subscribed, from the partition's end, in order;
- a released partition is dropped, and subscribing again starts at the new end (nothing stale);
- a subscribe cancelled while its partition is being assigned leaves nothing assigned;
- stopping the hub ends the consumer's thread;
- the tail notes where it first saw each workflow: a history read of a stretch it looked at is known empty;
- an end offset the tail's handle cannot give (no leader in its cached metadata) comes from a spare consumer.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agentwire.edge.hub import LiveHub, Subscription
from agentwire.edge.tail import _end_offset, tail_config
from agentwire.kafka import ensure_topics, partition_for
from agentwire.service.settings import KafkaSettings
from tests.bench.feed import Feed
from tests.support.stack import _delete_prefixed
from tests.support.wait import eventually_async

PARTITIONS = 3


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[KafkaSettings]:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                             partitions=PARTITIONS)
    await ensure_topics(settings)
    yield settings
    await _delete_prefixed(kafka_bootstrap, settings.topic_prefix)


@pytest.fixture
async def hub(kafka: KafkaSettings) -> AsyncIterator[LiveHub]:
    running = LiveHub(kafka, release_after_s=0.1)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def feed(kafka: KafkaSettings) -> AsyncIterator[Feed]:
    async with Feed(kafka.bootstrap_servers, kafka.topic_prefix) as running:
        yield running


async def received(sub: Subscription, count: int) -> list[int]:
    """The seqs queued for ``sub`` once there are ``count`` of them."""
    async def enough() -> bool:
        return len(sub.queue) >= count

    await eventually_async(enough, what=f"{count} events queued")
    return [item.seq for item in sub.queue]


async def test_a_subscriber_gets_what_is_written_after_it_subscribed_in_order(hub: LiveHub, feed: Feed) -> None:
    workflow_id = await feed.declare()
    partition = partition_for(workflow_id, PARTITIONS)
    for _ in range(5):
        await feed.emit(workflow_id)
    await feed.producer.flush()
    sub = await hub.subscribe(workflow_id, partition, limit=1000)
    assert hub.position(partition) == 5  # its end: what came before is the session's history
    for _ in range(200):
        await feed.emit(workflow_id)
    await feed.producer.flush()
    assert await received(sub, 200) == list(range(6, 206))
    assert [item.offset for item in sub.queue] == list(range(5, 205))


async def test_the_tail_knows_which_workflows_a_stretch_it_looked_at_holds_none_of(hub: LiveHub, feed: Feed) -> None:
    followed = await feed.declare()
    partition = partition_for(followed, PARTITIONS)
    sub = await hub.subscribe(followed, partition, limit=1000)
    start = hub.position(partition)
    assert start is not None
    others = [w for w in [await feed.declare() for _ in range(12)] if partition_for(w, PARTITIONS) == partition]
    assert others, "some workflows share the followed one's partition"
    for workflow_id in others:  # records nobody follows: looked at by the tail, not decoded
        await feed.emit(workflow_id)
    await feed.emit(followed)
    await feed.producer.flush()
    await received(sub, 1)
    looked = hub.position(partition)
    assert looked == start + len(others) + 1
    assert hub.sightings.absent(partition, "task-never-written", start, looked)
    assert all(not hub.sightings.absent(partition, w, start, looked) for w in others)
    assert hub.sightings.absent(partition, followed, start, looked - 1)  # its one record is the last
    assert not hub.sightings.absent(partition, "task-never-written", start - 1, looked), "before it looked"


async def test_a_released_partition_is_assigned_again_at_its_new_end(hub: LiveHub, feed: Feed) -> None:
    workflow_id = await feed.declare()
    partition = partition_for(workflow_id, PARTITIONS)
    first = await hub.subscribe(workflow_id, partition, limit=1000)
    await feed.emit(workflow_id)
    await feed.producer.flush()
    assert await received(first, 1) == [1]
    hub.unsubscribe(first)

    async def released() -> bool:
        return hub.position(partition) is None

    await eventually_async(released, what="partition released")
    for _ in range(10):  # written while nobody followed the partition
        await feed.emit(workflow_id)
    await feed.producer.flush()
    again = await hub.subscribe(workflow_id, partition, limit=1000)
    assert hub.position(partition) == 11
    for _ in range(5):
        await feed.emit(workflow_id)
    await feed.producer.flush()
    assert await received(again, 5) == list(range(12, 17))


async def test_a_subscribe_cancelled_during_assignment_leaves_nothing_assigned(hub: LiveHub, feed: Feed) -> None:
    workflow_id = await feed.declare()
    partition = partition_for(workflow_id, PARTITIONS)
    subscribing = asyncio.create_task(hub.subscribe(workflow_id, partition, limit=10))
    await asyncio.sleep(0)  # the assignment is under way on the consumer's thread
    subscribing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await subscribing

    async def released() -> bool:
        return hub.position(partition) is None

    await eventually_async(released, what="partition released after the cancelled subscribe")
    sub = await hub.subscribe(workflow_id, partition, limit=10)  # and it can be assigned again
    await feed.emit(workflow_id)
    await feed.producer.flush()
    assert await received(sub, 1) == [1]


async def test_stopping_the_hub_ends_its_consumer_thread(kafka: KafkaSettings) -> None:
    hub = LiveHub(kafka)
    await hub.start()
    assert any(t.name == "live-tail-kafka" for t in threading.enumerate())
    await hub.stop()
    assert not any(t.name == "live-tail-kafka" for t in threading.enumerate())


class _NoLeaderKnown:
    """A librdkafka handle whose metadata cache has a partition without a leader: librdkafka answers
    ``_UNKNOWN_PARTITION`` from the cache, asking no broker (what the tail's own handle did for 30 s after a
    slow broker recovery while every other client had the leader)."""

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))


async def test_an_end_offset_the_tails_handle_cannot_give_is_asked_through_a_spare_consumer(
    kafka: KafkaSettings, feed: Feed,
) -> None:
    workflow_id = await feed.declare()
    partition = partition_for(workflow_id, PARTITIONS)
    for _ in range(7):
        await feed.emit(workflow_id)
    await feed.producer.flush()
    spares: list[Consumer] = []

    def spare() -> Consumer:
        spares.append(Consumer(tail_config(kafka.bootstrap_servers)))
        return spares[-1]

    topic = TopicPartition(kafka.topics.events, partition)
    end = await asyncio.to_thread(_end_offset, _NoLeaderKnown(), topic, spare, 20.0)  # type: ignore[arg-type]
    assert end == 7
    assert len(spares) == 1
    with pytest.raises(RuntimeError):  # closed once answered
        spares[0].assignment()
