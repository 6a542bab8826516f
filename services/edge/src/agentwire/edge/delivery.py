"""One event ready to send: decoded once, framed once, shared by every client.

The live tail builds one ``Delivery`` per Kafka record and hands the same object
to every subscriber of the workflow; a history read builds them per read. The SSE
frame and the WebSocket message are rendered on first use and cached, so a record
fanned out to a thousand clients is decoded once and encoded once per protocol.
"""

from __future__ import annotations

import logging

from agentwire.edge.frames import sse_frame, ws_message
from agentwire.kafka import Record, position_id
from agentwire.kafka.metrics import counter
from agentwire.schema import DecodeError, Event, decode

log = logging.getLogger(__name__)

_undecodable = counter("agentwire_edge_undecodable_events_total", "Event records the edge skipped: not a valid event")


class Delivery:
    """A decoded event at its Kafka position, with lazily cached frames."""

    __slots__ = ("_sse", "_ws", "event", "offset", "partition", "seq", "stream_id", "ts", "type", "weight")

    def __init__(self, event: Event, partition: int, offset: int, weight: int = 0) -> None:
        self.event = event
        self.weight = weight
        self.partition = partition
        self.offset = offset
        self.seq = event.seq
        self.type = event.type
        self.ts = event.timestamp.timestamp()
        self.stream_id = position_id(partition, offset)
        self._sse: bytes | None = None
        self._ws: str | None = None

    @classmethod
    def of(cls, record: Record) -> Delivery | None:
        """Decode a record; None (logged) when it is not a valid event."""
        try:
            event = decode(Event, record.value)
        except DecodeError:
            log.warning("undecodable event at %d-%d", record.partition, record.offset)
            _undecodable.inc()
            return None
        return cls(event, record.partition, record.offset, len(record.value or b""))

    @property
    def sse(self) -> bytes:
        """The SSE frame (rendered once)."""
        if self._sse is None:
            self._sse = sse_frame(self.event, self.stream_id)
        return self._sse

    @property
    def ws(self) -> str:
        """The WebSocket text message (rendered once)."""
        if self._ws is None:
            self._ws = ws_message(self.event, self.stream_id).decode()
        return self._ws

    def size(self) -> int:
        """Approximate bytes held: the decoded event (about 3x its JSON) and at most two frames."""
        return 600 + 5 * self.weight
