"""``GET /api/v1/stream/sse?session_id=`` and ``/ws?session_id=``: one stream for a whole session.

Same authentication as a workflow stream (headers, ``?api_key=``; stream tokens open one workflow
only), same tenancy: another tenant's session, an unknown or a deleted one gets, after the
``: connected`` comment, one ``ERROR_OCCURRED`` frame ``{"session_id", "type", "message":
"Session not found"}`` and a clean close (WebSocket: that JSON, then close 1000).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from agentwire.edge import clients
from agentwire.edge.delivery import Delivery
from agentwire.edge.keys import AUTH, LOG, SETTINGS
from agentwire.edge.resume import parse_types
from agentwire.edge.session_stream import SessionStream, parse_cursor, sse_frame, ws_message
from agentwire.edge.wire import ws_heartbeat_s
from agentwire.kafka.metrics import gauge
from agentwire.schema import dumps
from agentwire.service.http import TRACE_HEADER, valid_id
from agentwire.store.web import STORE

_open = gauge("agentwire_edge_session_streams_open", "Open session streams", ["protocol"])


def _not_found(session_id: str) -> bytes:
    return dumps({"session_id": session_id, "type": "ERROR_OCCURRED", "message": "Session not found"})


async def _stream_of(request: web.Request) -> tuple[str, SessionStream | None]:
    """Validate and authenticate; the session's stream, or None if the caller has no such session."""
    session_id = valid_id(request.query.get("session_id"), "session_id")
    resume = parse_cursor(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    principal = request.app[AUTH].authenticate(request, allow_query=True)
    store = request.app[STORE].tasks
    settings = request.app[SETTINGS]
    if await store.get_session(principal.tenant, session_id) is None:
        return session_id, None
    stream = SessionStream(request.app[LOG], store, principal.tenant, session_id, resume,
                           parse_types(request.query.get("types")),
                           lookup_timeout_s=settings.http.read_your_writes_timeout_s)
    return session_id, stream


async def session_sse(request: web.Request) -> web.StreamResponse:
    session_id, stream = await _stream_of(request)
    settings = request.app[SETTINGS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no", TRACE_HEADER: request.get("trace_id", "")})
    await response.prepare(request)
    clients.hold(request)
    _open.labels("sse").inc()
    try:
        await response.write(f": connected to session {session_id}\nretry: {settings.streaming.retry_ms}\n\n".encode())
        if stream is None:
            await response.write(b"event: ERROR_OCCURRED\ndata: " + _not_found(session_id) + b"\n\n")
            await response.write_eof()
            return response
        last_write = time.monotonic()

        async def send(batch: list[tuple[Delivery, str]]) -> None:
            nonlocal last_write
            await response.write(b"".join(sse_frame(item, cursor) for item, cursor in batch))
            last_write = time.monotonic()

        follower = asyncio.create_task(stream.run(send))
        try:
            while not follower.done():
                await asyncio.wait({follower}, timeout=settings.streaming.keepalive_s)
                if not follower.done() and time.monotonic() - last_write >= settings.streaming.keepalive_s:
                    await response.write(b": keepalive\n\n")
                    last_write = time.monotonic()
            follower.result()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError too: the client left
            pass
        finally:
            follower.cancel()
    finally:
        clients.release(request)
        _open.labels("sse").dec()
    return response


async def session_ws(request: web.Request) -> web.StreamResponse:
    session_id, stream = await _stream_of(request)
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=ws_heartbeat_s(settings.streaming.ws_ping_s))
    await ws.prepare(request)
    clients.hold(request, ws)
    _open.labels("ws").inc()
    try:
        if stream is None:
            await ws.send_str(_not_found(session_id).decode())
            await ws.close(code=1000)
            return ws

        async def send(batch: list[tuple[Delivery, str]]) -> None:
            for item, cursor in batch:
                await ws.send_str(ws_message(item, cursor))

        follower = asyncio.create_task(stream.run(send))
        try:
            async for _ in ws:  # client frames are ignored; the loop ends when the client closes
                pass
        finally:
            follower.cancel()
    finally:
        clients.release(request)
        _open.labels("ws").dec()
    return ws
