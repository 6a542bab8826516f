"""The edge's recent-events cache: coverage, fill, bounds."""

from __future__ import annotations

from agentwire.edge.delivery import Delivery
from agentwire.edge.recent import RecentCache
from agentwire.schema import Event


def item(offset: int, seq: int, wf: str = "wf") -> Delivery:
    event = Event(workflow_id=wf, type="LLM_PARTIAL", seq=seq, event_id=f"{wf}:{seq}", message="m")
    return Delivery.of_event(event, 0, offset)


def test_a_window_covers_from_its_start_to_the_tail_position() -> None:
    cache = RecentCache(max_bytes=10**7, max_events=100)
    cache.open("wf", 0, 10)
    for offset, seq in ((11, 1), (13, 2)):
        cache.append("wf", item(offset, seq))
    cache.append("wf", item(13, 2))  # a re-dispatch is ignored
    lo, hi, items = cache.slice("wf", 0, 20, tail_position=15) or (0, 0, [])
    assert (lo, hi, [i.seq for i in items]) == (10, 15, [1, 2])
    assert cache.slice("wf", 15, 20, tail_position=15) is None


def test_a_complete_history_read_prepends_and_creates() -> None:
    cache = RecentCache(max_bytes=10**7, max_events=100)
    cache.open("wf", 0, 10)
    cache.append("wf", item(12, 3))
    cache.fill("wf", 0, 2, 10, [item(2, 1), item(5, 2)], tail_position=13)
    assert [i.seq for i in cache.slice("wf", 0, 20, tail_position=13)[2]] == [1, 2, 3]  # type: ignore[index]
    # no window and the tail already past the read's end: records may be missing, so no window
    cache.fill("other", 0, 0, 5, [item(1, 1, "other")], tail_position=9)
    assert "other" not in cache
    cache.fill("other", 0, 0, 9, [item(1, 1, "other")], tail_position=9)
    assert "other" in cache


def test_bounds_trim_the_front_and_evict_least_recently_used() -> None:
    cache = RecentCache(max_bytes=10**7, max_events=10)
    cache.open("wf", 0, 0)
    for n in range(20):
        cache.append("wf", item(n, n + 1))
    lo, _, items = cache.slice("wf", 0, 100, tail_position=20) or (0, 0, [])
    assert len(items) <= 11 and lo == items[0].offset and items[-1].seq == 20
    small = RecentCache(max_bytes=3 * item(0, 1).size(), max_events=10)
    for wf in ("a", "b"):
        small.open(wf, 0, 0)
        small.append(wf, item(0, 1, wf))
        small.append(wf, item(1, 2, wf))
    assert "a" not in small and "b" in small


def test_a_drop_of_the_partition_drops_its_windows() -> None:
    cache = RecentCache(max_bytes=10**7, max_events=10)
    cache.open("wf", 0, 0)
    cache.drop_partition(0)
    assert "wf" not in cache
