"""One event ready to send: decoded once, framed once, shared by every client.

The live tail builds one ``Delivery`` per Kafka record and hands the same object
to every subscriber of the workflow; a history read builds them per read. The SSE
frame and the WebSocket message are rendered on first use and cached, so a record
fanned out to a thousand clients is decoded once and encoded once per protocol.

Decoding is on the edge's per-event path, so a record written exactly as the
schema codec writes an ``Event`` (what the processor publishes) is read with
orjson and type checks of the fields the edge uses, without building a pydantic
model (≈ 4x cheaper, measured in docs/edge.md). Anything else goes through the
``Event`` model, which either accepts it (and then renders the same JSON) or
rejects it with the reason. tests/unit/test_edge_delivery.py holds the two paths
to the same output.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from agentwire.edge.frames import sse_frame, ws_message
from agentwire.kafka import Record, position_id
from agentwire.kafka.metrics import counter
from agentwire.schema import DecodeError, Event, decode, dumps

log = logging.getLogger(__name__)

_undecodable = counter("agentwire_edge_undecodable_events_total", "Event records the edge skipped: not a valid event")
_OPTIONAL = ("agent_id", "message", "payload")


class Delivery:
    """An event at its Kafka position: its public fields (``fields``) and lazily cached frames.

    ``fields`` is the event's public JSON object without ``stream_id``, timestamp as text.
    """

    __slots__ = ("_chunk", "_frame", "_sse", "_ts", "_ws", "fields", "offset", "partition", "seq", "stream_id", "type",
                 "weight")

    def __init__(self, fields: dict[str, Any], partition: int, offset: int, weight: int = 0,
                 ts: float | None = None) -> None:
        self.fields = fields
        self.weight = weight
        self.partition = partition
        self.offset = offset
        self.seq: int = fields["seq"]
        self.type: str = fields["type"]
        self._ts = ts
        self.stream_id = position_id(partition, offset)
        self._sse: bytes | None = None
        self._ws: bytes | None = None
        self._chunk: bytes | None = None
        self._frame: bytes | None = None

    @classmethod
    def of(cls, record: Record) -> Delivery | None:
        """Decode a record; None (logged) when it is not a valid event."""
        return cls.decode(record.value, record.partition, record.offset)

    @classmethod
    def decode(cls, value: bytes | None, partition: int, offset: int) -> Delivery | None:
        """Decode a record's value; None (logged) when it is not a valid event."""
        try:
            data = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError:
            data = None
        fields = _canonical(data)
        if fields is not None:
            return cls(fields, partition, offset, len(value or b""))
        try:
            event = decode(Event, value)
        except DecodeError as exc:
            log.warning("undecodable event at %d-%d: %s", partition, offset, exc)
            _undecodable.inc()
            return None
        return cls.of_event(event, partition, offset, len(value or b""))

    @classmethod
    def of_event(cls, event: Event, partition: int, offset: int, weight: int | None = None) -> Delivery:
        """The delivery of a decoded event."""
        fields = event.public("")
        del fields["stream_id"]
        fields["timestamp"] = dumps(event.timestamp)[1:-1].decode()
        return cls(fields, partition, offset, len(dumps(fields)) if weight is None else weight,
                   event.timestamp.timestamp())

    @property
    def ts(self) -> float:
        """The event's time, epoch seconds (parsed on first use: only metrics need it)."""
        if self._ts is None:
            self._ts = datetime.fromisoformat(self.fields["timestamp"]).timestamp()
        return self._ts

    def public(self) -> dict[str, Any]:
        """The event JSON clients see, as a new dict (what ``Event.public`` gives)."""
        return {**self.fields, "stream_id": self.stream_id}

    @property
    def sse(self) -> bytes:
        """The SSE frame (rendered once)."""
        if self._sse is None:
            self._sse = sse_frame(self.fields, self.stream_id)
        return self._sse

    @property
    def ws(self) -> bytes:
        """The WebSocket text message, UTF-8 (rendered once)."""
        if self._ws is None:
            self._ws = ws_message(self.fields, self.stream_id)
        return self._ws

    @property
    def sse_chunk(self) -> bytes:
        """The SSE frame as one chunk of a chunked HTTP/1.1 body (for wire.py)."""
        if self._chunk is None:
            sse = self.sse
            self._chunk = b"%x\r\n%b\r\n" % (len(sse), sse)
        return self._chunk

    @property
    def ws_frame(self) -> bytes:
        """The WebSocket message as one whole, unmasked, uncompressed text frame (for wire.py)."""
        if self._frame is None:
            self._frame = Frame(Opcode.TEXT, self.ws).serialize(mask=False)
        return self._frame

    def size(self) -> int:
        """Approximate bytes held: the decoded fields (about 3x their JSON) and at most four renderings."""
        return 600 + 7 * self.weight


def _canonical(data: object) -> dict[str, Any] | None:
    """The public fields of an event exactly as the codec writes one; None for anything else."""
    if type(data) is not dict:
        return None
    workflow_id, kind, seq, stamp = data.get("workflow_id"), data.get("type"), data.get("seq"), data.get("timestamp")
    if (type(workflow_id) is not str or type(kind) is not str or type(seq) is not int
            or type(data.get("event_id")) is not str or type(stamp) is not str):
        return None
    # the codec's form: 2026-12-01T00:17:01Z or 2026-12-01T00:17:01.158194Z
    if not (len(stamp) == 20 or len(stamp) == 27 and stamp[19] == "." and stamp[20:26] != "000000") \
            or stamp[10] != "T" or stamp[-1] != "Z":
        return None
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return None
    fields: dict[str, Any] = {"workflow_id": workflow_id, "type": kind}
    for key in _OPTIONAL:
        value = data.get(key)
        if value is not None:
            if type(value) is not (dict if key == "payload" else str):
                return None
            fields[key] = value
    fields["timestamp"] = stamp
    fields["seq"] = seq
    return fields
