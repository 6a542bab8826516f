"""The processor's agents notice records that never reached them (agentwire.processor.offsets)."""

from __future__ import annotations

from faust.types import TP

from agentwire.processor.offsets import OffsetWatch

RAW0, RAW1 = TP("raw", 0), TP("raw", 1)


def test_consecutive_and_reread_records_are_not_skips() -> None:
    watch = OffsetWatch({RAW0: 10}.get)
    assert [watch.see(RAW0, offset) for offset in (10, 11, 12)] == [0, 0, 0]
    assert watch.see(RAW0, 11) == 0  # read again after a seek back: a replay, never a skip
    assert watch.see(RAW0, 12) == 0


def test_a_forward_jump_counts_the_records_between() -> None:
    watch = OffsetWatch({}.get)
    watch.see(RAW0, 5)
    assert watch.see(RAW0, 9) == 3  # 6, 7 and 8
    assert watch.see(RAW0, 10) == 0


def test_the_first_record_of_an_assignment_is_compared_with_the_committed_offset() -> None:
    committed = {RAW0: 124, RAW1: 7}
    watch = OffsetWatch(committed.get)
    assert watch.see(RAW0, 350) == 226  # the restart skip: committed at 124, first read at 350
    assert watch.see(RAW1, 7) == 0
    assert watch.see(TP("raw", 2), 40) == 0  # nothing committed yet: no baseline

    committed[RAW0] = 400  # another worker moved the partition on meanwhile
    watch.reset()
    assert watch.see(RAW0, 400) == 0
