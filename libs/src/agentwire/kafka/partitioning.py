"""Key → partition exactly as the Java client does it.

``(murmur2(key) & 0x7fffffff) % partitions``, with aiokafka's murmur2 (checked
against Kafka's own test vectors in tests/unit/test_partitioning.py).
"""

from __future__ import annotations

import functools

from aiokafka.partitioner import murmur2


@functools.lru_cache(maxsize=4096)
def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition a record keyed ``key`` lands in, for a topic of ``partitions``.

    Cached: aiokafka's murmur2 is pure Python (≈ 6 µs a key), and one submission asks for the same
    workflow id's partition several times within a millisecond (its read, its store row, its record).
    """
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


def position_id(partition: int, offset: int) -> str:
    """The public id of a record: ``<partition>-<offset>``."""
    return f"{partition}-{offset}"


def parse_position_id(value: str) -> tuple[int, int] | None:
    """Parse ``<partition>-<offset>``; None when ``value`` is not of that form."""
    head, sep, tail = value.partition("-")
    if not sep or not head.isdigit() or not tail.isdigit():
        return None
    return int(head), int(tail)
