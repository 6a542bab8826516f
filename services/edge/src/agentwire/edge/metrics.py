"""The edge's Prometheus families, and the tally that hands the live fan-out's figures over per fetch."""

from __future__ import annotations

from agentwire.edge.delivery import Delivery
from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, histogram

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

DELIVERED = counter("agentwire_edge_events_delivered_total", "Events written to clients", ["protocol"])
HISTORY_READ = counter("agentwire_edge_history_events_total", "History events read by sessions", ["source"])
HISTORY_SKIPPED = counter("agentwire_edge_history_reads_skipped_total",
                          "Kafka reads a session skipped: the live tail had seen nothing of its workflow there")
LATENCY = histogram("agentwire_edge_event_latency_seconds", "Event timestamp to written to the client",
                    buckets=LATENCY_BUCKETS)
BATCH_SIZES = histogram("agentwire_edge_write_batch_events", "Events per write to a client", buckets=BATCH_BUCKETS)
LIVE_WRITES = counter("agentwire_edge_live_writes_total", "Writes the live tail made straight to caught-up clients")


def observe_write(protocol: str, batch: list[Delivery], now: float) -> None:
    """One write of a session's own (history, catch-up) path."""
    DELIVERED.labels(protocol).inc(len(batch))
    BATCH_SIZES.observe(len(batch))
    LATENCY.observe(max(now - batch[0].ts, 0.0))


class WriteTally:
    """The live tail's writes of one fetch, added up and handed to Prometheus once (``flush``).

    Counts are exact. The two histograms take one sample per fetch rather than one per write: the
    latency of the fetch's first written event (every client of a fetch is written in the same
    pass) and the mean events per write.
    """

    __slots__ = ("_events", "_first", "_writes")

    def __init__(self) -> None:
        self._events: dict[str, int] = {}
        self._writes = 0
        self._first: Delivery | None = None

    def add(self, protocol: str, batch: list[Delivery]) -> None:
        events = self._events
        events[protocol] = events.get(protocol, 0) + len(batch)
        self._writes += 1
        if self._first is None:
            self._first = batch[0]

    def flush(self, now: float) -> None:
        if self._first is None:
            return
        total = 0
        for protocol, count in self._events.items():
            DELIVERED.labels(protocol).inc(count)
            total += count
        LIVE_WRITES.inc(self._writes)
        BATCH_SIZES.observe(-(-total // self._writes))
        LATENCY.observe(max(now - self._first.ts, 0.0))
        self._events.clear()
        self._writes = 0
        self._first = None
