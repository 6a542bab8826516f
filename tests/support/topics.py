"""Reading what a topic holds for one key (tombstones and retention checks in tests)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from agentwire.kafka.partitioning import partition_for


async def values_of(bootstrap: str, topic: str, key: str, partitions: int = 12,
                    partition_key: str | None = None) -> list[bytes | None]:
    """Every value (None for a tombstone) the key's partition holds for ``key``, oldest first.

    ``partition_key`` names the partition when the record key is not the workflow id itself (the
    processor's changelogs key a workflow by its JSON-encoded id, in the workflow's partition).
    """
    tp = TopicPartition(topic, partition_for(partition_key or key, partitions))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        values: list[bytes | None] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                values += [r.value for r in records if r.key == key.encode()]
        return values
    finally:
        await consumer.stop()
