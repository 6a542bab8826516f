"""Watching that every record of a partition reaches an agent: no offset skipped.

The raw and inbound topics are neither compacted nor transactional, so the offsets an
agent reads from a partition it owns are consecutive; a record read twice after a seek
is normal (replays are idempotent), a record never read is lost work. faust decides what
reaches the agents (its read offset, its queues cleared when the flow resumes), so the
agents check it: a forward jump is counted (``agentwire_processor_skipped_records_total``)
and logged with the range, which an operator can replay.

After an assignment the first record is compared with the committed offset faust sought
to, so records skipped right at the start of a generation are seen too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agentwire.kafka.metrics import counter

log = logging.getLogger(__name__)

_skipped = counter("agentwire_processor_skipped_records_total",
                   "Records of an owned partition that never reached the agent (offsets jumped forward)",
                   ["topic"])


class OffsetWatch:
    def __init__(self, committed: Callable[[Any], int | None]) -> None:
        self._committed = committed  # tp -> the committed offset faust sought to, or None
        self._next: dict[Any, int] = {}

    def reset(self) -> None:
        """A new assignment: the next record of each partition is compared with its committed offset."""
        self._next.clear()

    def see(self, tp: Any, offset: int) -> int:
        """Note a record read; the number of records skipped before it (0 almost always)."""
        expected = self._next.get(tp)
        self._next[tp] = offset + 1
        if expected is None:
            expected = self._committed(tp)
            if expected is None:
                return 0
        if offset <= expected:
            return 0
        skipped = offset - expected
        _skipped.labels(tp.topic).inc(skipped)
        log.error("records skipped: %s[%d] offsets %d..%d never reached the agent (%d records)",
                  tp.topic, tp.partition, expected, offset - 1, skipped)
        return skipped
