"""A bounded cache of recent decoded events per workflow, fed by the live tail.

A window of a workflow holds its events in offset order and covers ``[lo, hub
position of its partition)``: every event of the workflow in that range is in it.
The live tail appends what it dispatches; a completed history read may prepend
(or create the window when the tail is not ahead of the read). Windows are dropped
with their partition, evicted least recently used past ``max_bytes``, and trimmed
from the front past ``max_events`` per workflow.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict

from agentwire.edge.delivery import Delivery


class Window:
    __slots__ = ("bytes", "items", "lo", "offsets", "partition")

    def __init__(self, partition: int, lo: int) -> None:
        self.partition = partition
        self.lo = lo
        self.items: list[Delivery] = []
        self.offsets: list[int] = []
        self.bytes = 0


class RecentCache:
    def __init__(self, *, max_bytes: int, max_events: int) -> None:
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._windows: OrderedDict[str, Window] = OrderedDict()
        self._bytes = 0
        self._reserved = 0  # held by history reads that may fill the cache (at most max_bytes / 2)

    @property
    def max_events(self) -> int:
        return self._max_events

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0 and self._max_events > 0

    def __contains__(self, workflow_id: str) -> bool:
        return workflow_id in self._windows

    def append(self, workflow_id: str, item: Delivery) -> None:
        """Add an event the live tail dispatched (ignored if already held)."""
        self.extend(workflow_id, [item])

    def extend(self, workflow_id: str, items: list[Delivery]) -> None:
        """Add a workflow's events of one fetch, in offset order (those already held are ignored)."""
        window = self._windows.get(workflow_id)
        if window is None:
            return
        if window.offsets and items[0].offset <= window.offsets[-1]:
            last = window.offsets[-1]
            items = [i for i in items if i.offset > last]
            if not items:
                return
        window.items.extend(items)
        window.offsets.extend([i.offset for i in items])
        self._grow(window, sum([i.size() for i in items]))
        if len(window.items) > self._max_events * 1.1:
            self._trim(window, len(window.items) - self._max_events)

    def reserve(self, size: int) -> bool:
        """Account ``size`` bytes a history read keeps to fill the cache; False past the budget."""
        if self._reserved + size > self._max_bytes // 2:
            return False
        self._reserved += size
        return True

    def release(self, size: int) -> None:
        self._reserved -= size

    def open(self, workflow_id: str, partition: int, lo: int) -> None:
        """Start a window at ``lo`` (the tail has seen every record of the partition from ``lo``)."""
        if self.enabled and workflow_id not in self._windows:
            self._windows[workflow_id] = Window(partition, lo)

    def fill(self, workflow_id: str, partition: int, start: int, end: int, items: list[Delivery],
             tail_position: int | None) -> None:
        """Record a complete history read of ``[start, end)``.

        ``tail_position`` is where the live tail will dispatch next in the partition
        (None if unassigned): a new window needs the tail not to be past ``end``.
        """
        if not self.enabled or tail_position is None or len(items) > self._max_events:
            return
        window = self._windows.get(workflow_id)
        if window is None:
            if tail_position > end:
                return
            window = self._windows[workflow_id] = Window(partition, start)
            window.items = list(items)
            window.offsets = [i.offset for i in items]
            self._grow(window, sum(i.size() for i in items))
            return
        if start >= window.lo or end < window.lo:
            return
        older = [i for i in items if i.offset < window.lo]
        window.items[:0] = older
        window.offsets[:0] = [i.offset for i in older]
        window.lo = start
        self._grow(window, sum(i.size() for i in older))

    def slice(self, workflow_id: str, start: int, until: int,
              tail_position: int) -> tuple[int, int, list[Delivery]] | None:
        """``(lo, hi, events in [lo, hi))``: what the window covers of ``[start, until)``.

        None when it covers nothing. The caller reads ``[start, lo)`` and
        ``[hi, until)`` from Kafka.
        """
        window = self._windows.get(workflow_id)
        if window is None:
            return None
        covered = max(tail_position, window.offsets[-1] + 1 if window.offsets else 0)
        lo, hi = max(start, window.lo), min(until, covered)
        if lo >= hi:
            return None
        self._windows.move_to_end(workflow_id)
        first = bisect.bisect_left(window.offsets, lo)
        last = bisect.bisect_left(window.offsets, hi)
        return lo, hi, window.items[first:last]

    def drop_partition(self, partition: int) -> None:
        for workflow_id in [w for w, win in self._windows.items() if win.partition == partition]:
            self._bytes -= self._windows.pop(workflow_id).bytes

    def _trim(self, window: Window, count: int) -> None:
        removed = window.items[:count]
        del window.items[:count]
        del window.offsets[:count]
        window.lo = removed[-1].offset + 1
        size = sum(i.size() for i in removed)
        window.bytes -= size
        self._bytes -= size

    def _grow(self, window: Window, size: int) -> None:
        window.bytes += size
        self._bytes += size
        while self._bytes > self._max_bytes and self._windows:
            _, evicted = self._windows.popitem(last=False)
            self._bytes -= evicted.bytes
