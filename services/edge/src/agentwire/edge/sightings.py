"""Where the live tail first saw each workflow in a partition: enough to know a history read is empty.

A client that connects as its task starts has no first offset to start from, so its session
starts from a time search a few seconds before the task was created and reads that stretch of the
partition from Kafka — every record of every workflow in it, to keep its own: at 100 tasks a
second some 500 records decoded per new client, a fifth of a busy edge's CPU. The live tail
looks at every record of the partitions it is assigned anyway; noting the first offset of each
workflow key it passes lets a session skip a read that would find nothing.

Per partition, two generations of at most ``limit`` workflows each: the current one covers
``[its start, what the tail has looked at)``; when it is full it becomes the previous one and a
new one starts at the record being looked at. Memory stays bounded whatever the history.
"""

from __future__ import annotations


class _Partition:
    __slots__ = ("current", "previous", "previous_from", "since")

    def __init__(self, since: int) -> None:
        self.since = since  # every record from this offset on has been looked at (current generation)
        self.current: dict[str, int] = {}  # workflow: its first offset at or after ``since``
        self.previous: dict[str, int] | None = None  # the same for [previous_from, since)
        self.previous_from = since


class Sightings:
    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._partitions: dict[int, _Partition] = {}

    def start(self, partition: int, offset: int) -> None:
        """The tail looks at every record of ``partition`` from ``offset`` on (forgetting what it saw before)."""
        self._partitions[partition] = _Partition(offset)

    def drop(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def saw(self, partition: int, workflow_id: str, offset: int) -> None:
        """The tail looked at a record of ``workflow_id`` (called for each record, in offset order)."""
        seen = self._partitions.get(partition)
        if seen is None or workflow_id in seen.current:
            return
        if len(seen.current) >= self._limit:
            seen.previous, seen.previous_from = seen.current, seen.since
            seen.current, seen.since = {}, offset
        seen.current[workflow_id] = offset

    def absent(self, partition: int, workflow_id: str, start: int, until: int) -> bool:
        """True only when it is known that ``[start, until)`` holds no record of ``workflow_id``.

        ``until`` must not be past what the tail has looked at (a subscriber's window start is not).
        """
        seen = self._partitions.get(partition)
        if seen is None:
            return False
        first = seen.current.get(workflow_id)
        if first is not None and first < until:
            return False
        if start >= seen.since:
            return True
        if seen.previous is None or start < seen.previous_from:
            return False
        first = seen.previous.get(workflow_id)
        return first is None or first >= until
