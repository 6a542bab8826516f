"""Live events written straight to a client's socket, past aiohttp's writers: the one place the edge does.

Why: the live tail fans each fetch out to every subscriber. Through aiohttp's async writers each
delivery cost a wake-up of the client's task, an await chain and a write (py-spy on the
500-workflow benchmark, docs/performance.md); with many workflows of one or two watchers that is
most of the edge's CPU per event. A ``Wire`` lets the tail write the frames itself, synchronously,
while it dispatches: one ``transport.write`` of whole frames per client per fetch. The session's
task sleeps until its stream ends or its client falls behind or leaves.

What it relies on (each set up by streams.py, each checked by tests/integration/test_edge_wire.py):
- the response head is on the wire before the first direct write (SSE: the ``: connected``
  comment went first; WebSocket: the handshake completed);
- an HTTP/1.1 SSE response uses chunked transfer encoding, enabled explicitly, so each event
  travels as one whole chunk (HTTP/1.0 bodies are written as they are and end with the connection);
- a WebSocket response never compresses (``compress=False``), so an event's text frame is the same
  bytes for every client and needs no per-client state;
- every write is one ``transport.write`` of whole frames (keepalives too: the hub writes them every
  ``keepalive_s`` to each direct client, one timer for the process), so aiohttp's own writes (the
  session's, pings, the close frame) never land inside one of ours; after aiohttp has begun closing a
  WebSocket, nothing more is written.

Slow clients stay bounded: a client whose socket does not take what is written (the transport
keeps a backlog) may hold at most ``limit`` unsent events there; past that ``write`` answers False
and the session goes back to reading Kafka at its own pace (Kafka is the buffer).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from aiohttp import web

from agentwire.edge.delivery import Delivery
from agentwire.edge.frames import KEEPALIVE

_KEEPALIVE_CHUNK = b"%x\r\n%b\r\n" % (len(KEEPALIVE), KEEPALIVE)


def ws_heartbeat_s(ping_s: float) -> float:
    """One WebSocket's ping interval: ``ping_s`` less up to a tenth, drawn per connection.

    aiohttp pings each WebSocket ``heartbeat`` seconds after its last ping; clients that connected in a
    burst (a deploy, a reconnect storm) would otherwise be pinged all in the same moment, forever — 1,000
    pings and their pongs at once put ≈ 2 ms on the live events' p99 (docs/performance.md). A client
    still hears a ping at least every ``ping_s``.
    """
    return ping_s * random.uniform(0.9, 1.0)  # noqa: S311 - spreading timers, not a secret


class Wire:
    """Writes whole frames of live events to one client's transport."""

    __slots__ = ("_closed", "_frame", "_keepalive", "_limit", "_transport", "_unsent")

    def __init__(self, transport: asyncio.Transport, frame: Callable[[Delivery], bytes], limit: int,
                 closed: Callable[[], bool] | None = None, keepalive: bytes | None = None) -> None:
        self._transport = transport
        self._frame = frame
        self._limit = limit
        self._closed = closed
        self._keepalive = keepalive
        self._unsent = 0  # events written since a write last left the transport with no backlog

    def write(self, batch: list[Delivery]) -> bool:
        """Write ``batch``; False when the client holds more than ``limit`` unsent events.

        Raises ConnectionResetError when the client has gone (or its WebSocket is closing).
        """
        transport = self._transport
        if transport.is_closing() or self._closed is not None and self._closed():
            raise ConnectionResetError("client gone")
        frame = self._frame
        transport.write(frame(batch[0]) if len(batch) == 1 else b"".join(map(frame, batch)))
        if transport.get_write_buffer_size():
            self._unsent += len(batch)
            return self._unsent <= self._limit
        self._unsent = 0
        return True

    def keepalive(self) -> None:
        """Write a keepalive, unless the client still has unsent data (then it is not idle) or has none.

        Raises ConnectionResetError when the client has gone.
        """
        transport = self._transport
        if transport.is_closing() or self._closed is not None and self._closed():
            raise ConnectionResetError("client gone")
        if self._keepalive is not None and not transport.get_write_buffer_size():
            transport.write(self._keepalive)


def sse_wire(request: web.Request, response: web.StreamResponse, limit: int) -> Wire | None:
    """A wire for a prepared SSE response (None when its connection is already gone)."""
    transport = request.transport  # asyncio's or uvloop's (which is no asyncio.Transport subclass)
    if transport is None:
        return None
    if response.chunked:
        return Wire(transport, _sse_chunk, limit, keepalive=_KEEPALIVE_CHUNK)
    return Wire(transport, _sse_frame, limit, keepalive=KEEPALIVE)


def ws_wire(request: web.Request, ws: web.WebSocketResponse, limit: int) -> Wire | None:
    """A wire for a prepared, uncompressed WebSocket response (None when that cannot be)."""
    transport = request.transport
    if transport is None or ws.compress:
        return None
    return Wire(transport, _ws_frame, limit, closed=lambda: ws.closed)  # pings: aiohttp's heartbeat


def _sse_chunk(item: Delivery) -> bytes:
    return item.sse_chunk


def _sse_frame(item: Delivery) -> bytes:
    return item.sse


def _ws_frame(item: Delivery) -> bytes:
    return item.ws_frame
