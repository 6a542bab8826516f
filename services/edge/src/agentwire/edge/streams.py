"""The stream routes: SSE and WebSocket over the same StreamSession."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson
from aiohttp import HttpVersion11, WSMsgType, web

from agentwire.edge import clients
from agentwire.edge.frames import KEEPALIVE, events_gone_frame, not_found_frame
from agentwire.edge.keys import AUTH, HUB, LOG, SETTINGS
from agentwire.edge.resume import parse_resume, parse_types
from agentwire.edge.session import Delivery, StreamSession
from agentwire.edge.session_routes import session_sse, session_ws
from agentwire.edge.wire import Wire, sse_wire, ws_heartbeat_s, ws_wire
from agentwire.kafka.metrics import gauge
from agentwire.schema import TaskState
from agentwire.service.http import TRACE_HEADER, ApiError, valid_id
from agentwire.store.web import STORE

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_open = gauge("agentwire_edge_connections_open", "Open stream connections", ["protocol"])


async def _authorized_state(request: web.Request) -> tuple[str, TaskState | None]:
    """Validate, authenticate and look the workflow up (None if unknown or foreign)."""
    workflow_id = valid_id(request.query.get("workflow_id"), "workflow_id")
    principal = request.app[AUTH].authenticate_stream(request, workflow_id)
    settings = request.app[SETTINGS]
    state = await request.app[STORE].tasks.lookup(workflow_id, settings.streaming.unknown_workflow_wait_s)
    if state is not None and state.tenant != principal.tenant:
        state = None
    return workflow_id, state


async def _open_session(request: web.Request) -> StreamSession | None:
    """The client's session; None when the workflow is unknown or foreign.

    The handler keeps the session, not the TaskState (session.py drops it once it has started).
    """
    _, state = await _authorized_state(request)
    return None if state is None else _session(request, state)


def _session(request: web.Request, state: TaskState) -> StreamSession:
    settings = request.app[SETTINGS]
    resume = parse_resume(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    return StreamSession(
        request.app[HUB],
        request.app[LOG],
        state,
        resume,
        parse_types(request.query.get("types")),
        buffer_size=settings.streaming.buffer_size,
        keepalive_s=settings.streaming.keepalive_s,
        states=request.app[STORE].tasks,
        gone_grace_s=settings.streaming.unknown_workflow_wait_s,
    )


class SseSink:
    __slots__ = ("_response", "wire")

    def __init__(self, response: web.StreamResponse, wire: Wire | None) -> None:
        self._response = response
        self.wire = wire

    async def send(self, batch: list[Delivery]) -> None:
        await self._response.write(b"".join(item.sse for item in batch))

    async def keepalive(self) -> None:
        await self._response.write(KEEPALIVE)


@routes.get("/api/v1/stream/sse")
async def stream_sse(request: web.Request) -> web.StreamResponse:
    if "session_id" in request.query and "workflow_id" not in request.query:
        return await session_sse(request)
    workflow_id = valid_id(request.query.get("workflow_id"), "workflow_id")
    parse_resume(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    request.app[AUTH].authenticate_stream(request, workflow_id)
    settings = request.app[SETTINGS]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            TRACE_HEADER: request.get("trace_id", ""),
        }
    )
    if request.version >= HttpVersion11:
        response.enable_chunked_encoding()  # explicit: the live tail writes whole chunks (wire.py)
    await response.prepare(request)
    clients.hold(request)
    _open.labels("sse").inc()
    try:
        await response.write(
            f": connected to workflow {workflow_id}\nretry: {settings.streaming.retry_ms}\n\n".encode()
        )
        session = await _open_session(request)
        if session is None:
            await response.write(not_found_frame(workflow_id))
        else:
            await session.run(SseSink(response, sse_wire(request, response, settings.streaming.buffer_size)), "sse")
            if session.gone:
                await response.write(events_gone_frame(workflow_id))
        try:
            await response.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
            pass  # the client left after the last event
    finally:
        clients.release(request)
        _open.labels("sse").dec()
    return response


class WsSink:
    __slots__ = ("_ws", "wire")

    def __init__(self, ws: web.WebSocketResponse, wire: Wire | None) -> None:
        self._ws = ws
        self.wire = wire

    async def send(self, batch: list[Delivery]) -> None:
        for item in batch:
            await self._ws.send_frame(item.ws, WSMsgType.TEXT)

    async def keepalive(self) -> None:
        return None  # WebSocket pings are sent by aiohttp's heartbeat


@routes.get("/api/v1/stream/ws")
async def stream_ws(request: web.Request) -> web.StreamResponse:
    if "session_id" in request.query and "workflow_id" not in request.query:
        return await session_ws(request)
    workflow_id = valid_id(request.query.get("workflow_id"), "workflow_id")
    parse_resume(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    request.app[AUTH].authenticate_stream(request, workflow_id)
    settings = request.app[SETTINGS]
    # uncompressed: an event's frame is then the same bytes for every client (wire.py)
    ws = web.WebSocketResponse(heartbeat=ws_heartbeat_s(settings.streaming.ws_ping_s), compress=False)
    await ws.prepare(request)
    clients.hold(request, ws)
    _open.labels("ws").inc()
    reader = asyncio.create_task(_ignore_client_frames(ws))
    try:
        session = await _open_session(request)
        if session is None:
            await ws.send_str(not_found_frame(workflow_id).split(b"data: ", 1)[1].strip().decode())
        else:
            await session.run(WsSink(ws, ws_wire(request, ws, settings.streaming.buffer_size)), "ws")
            if session.gone:
                await ws.send_str(events_gone_frame(workflow_id).split(b"data: ", 1)[1].strip().decode())
        await ws.close(code=1000)
    finally:
        clients.release(request)
        reader.cancel()
        _open.labels("ws").dec()
    return ws


async def _ignore_client_frames(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type == WSMsgType.ERROR:
            return



@routes.post("/api/v1/stream/token")
async def stream_token(request: web.Request) -> web.Response:
    """A short-lived token that opens one of the caller's own workflows as ``?token=``."""
    auth = request.app[AUTH]
    principal = auth.authenticate(request)
    try:
        body = orjson.loads(await request.read() or b"null")
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object with workflow_id")
    raw_id = body.get("workflow_id")
    workflow_id = valid_id(raw_id if isinstance(raw_id, str) else None, "workflow_id")
    settings = request.app[SETTINGS]
    state = await request.app[STORE].tasks.lookup(workflow_id, settings.http.read_your_writes_timeout_s)
    if state is None or state.tenant != principal.tenant:
        raise ApiError(404, "Task not found")
    token, expires = auth.tokens.issue(principal.tenant, workflow_id)
    expires_at = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
    return web.json_response({"token": token, "expires_at": expires_at})
