"""Which offsets a runner may commit: a task's record only once its play has ended."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata


class OffsetTracker:
    """Per partition: the offsets still playing and the highest offset seen."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = {}
        self._seen: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self.seen(tp, offset)

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self._seen[tp] = max(self._seen.get(tp, -1), offset)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        self._open.get(tp, set()).discard(offset)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._open.pop(tp, None)
            self._seen.pop(tp, None)
            self._committed.pop(tp, None)

    def committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets to commit now (only those that moved)."""
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, seen in self._seen.items():
            still_open = self._open.get(tp)
            offset = min(still_open) if still_open else seen + 1
            if offset > self._committed.get(tp, -1):
                out[tp] = OffsetAndMetadata(offset, "")
        return out

    def committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset
