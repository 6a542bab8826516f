"""The key → partition function agrees with the Java client."""

import ctypes

import pytest
from aiokafka.partitioner import murmur2

from agentwire.kafka import parse_position_id, partition_for, position_id

# Kafka's own test vectors (clients UtilsTest.testMurmur2): key → signed 32-bit murmur2.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_murmur2_matches_java(key: bytes, expected: int) -> None:
    assert ctypes.c_int32(murmur2(key)).value == expected


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_partition_is_positive_murmur2_modulo(key: bytes, expected: int) -> None:
    for partitions in (1, 3, 12, 50):
        assert partition_for(key, partitions) == (expected & 0x7FFFFFFF) % partitions


def test_str_and_bytes_keys_agree() -> None:
    assert partition_for("task-abc", 12) == partition_for(b"task-abc", 12)


def test_position_ids_round_trip() -> None:
    assert parse_position_id(position_id(7, 12345)) == (7, 12345)
    for bad in ("", "7", "-1", "a-b", "7-", "7-1-2", "1.5-3"):
        assert parse_position_id(bad) is None
