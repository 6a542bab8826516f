"""Where the live tail first saw each workflow (edge/sightings.py): a history read is skipped only when
it is known to be empty."""

from __future__ import annotations

from agentwire.edge.sightings import Sightings


def test_a_workflow_the_tail_has_not_seen_since_the_start_is_absent() -> None:
    seen = Sightings()
    seen.start(3, 100)
    for offset, workflow_id in ((100, "a"), (101, "b"), (102, "a"), (105, "c")):
        seen.saw(3, workflow_id, offset)
    assert seen.absent(3, "new", 100, 106)
    assert seen.absent(3, "c", 100, 105)  # its first record is at 105: nothing before it
    assert not seen.absent(3, "c", 100, 106)
    assert not seen.absent(3, "a", 101, 106)  # first seen at 100: later records may be anywhere
    assert not seen.absent(3, "new", 99, 106), "before the tail started looking nothing is known"
    assert not seen.absent(4, "new", 100, 106), "a partition the tail does not read"


def test_generations_keep_memory_bounded_and_answers_safe() -> None:
    seen = Sightings(limit=2)
    seen.start(0, 0)
    for offset, workflow_id in enumerate(["a", "b", "c", "a", "d", "e"]):
        seen.saw(0, workflow_id, offset)
    # generations: [0, 2) {a, b} forgotten; [2, 4) {c: 2, a: 3}; current from 4 {d: 4, e: 5}
    assert not seen.absent(0, "x", 1, 6), "the oldest generation is forgotten"
    assert seen.absent(0, "x", 2, 6)
    assert not seen.absent(0, "a", 2, 6)
    assert seen.absent(0, "b", 2, 6), "b's records were all before 2"
    assert seen.absent(0, "e", 2, 5) and not seen.absent(0, "e", 2, 6)


def test_a_dropped_or_restarted_partition_forgets() -> None:
    seen = Sightings()
    seen.start(0, 10)
    seen.saw(0, "a", 10)
    seen.drop(0)
    assert not seen.absent(0, "x", 10, 11)
    seen.start(0, 50)  # assigned again at its new end: what came between was not looked at
    assert not seen.absent(0, "a", 10, 51)
    assert seen.absent(0, "a", 50, 51)
