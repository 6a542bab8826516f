"""The stream clients an edge holds, and what it lets go of when one leaves.

Every stream handler holds its client for as long as it streams (``hold`` … ``release``): the shutdown drops
them all so that they reconnect elsewhere and resume. When a client leaves, nothing it used should
wait for a full garbage collection — an edge runs those rarely (``heap.py``), so whatever sits in a
reference cycle grows the process for minutes. One such cycle is aiohttp's own: a WebSocket with a
heartbeat hands the connection's protocol a callback to itself (aiohttp 3.14's
``RequestHandler.set_parser(..., data_received_cb=)``, added by aiohttp pull request 12030), which
the protocol keeps after the connection is lost: protocol → callback → WebSocket → request →
protocol, the whole connection with it. ``release`` cuts that link once the handler is done
(``tests/unit/test_ws_cycle.py`` shows the cycle with aiohttp alone, and its cut).
"""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web

from agentwire.edge.keys import CLIENTS


class Client(NamedTuple):
    request: web.Request
    ws: web.WebSocketResponse | None


def hold(request: web.Request, ws: web.WebSocketResponse | None = None) -> None:
    """The handler streams to this client from now on (until ``release``)."""
    request.app[CLIENTS][id(request)] = Client(request, ws)


def release(request: web.Request) -> None:
    """The handler is done with its client (in its ``finally``)."""
    client = request.app[CLIENTS].pop(id(request), None)
    if client is not None and client.ws is not None:
        release_heartbeat(request)


def release_heartbeat(request: web.BaseRequest) -> None:
    """Drop the protocol's callback to a finished WebSocket (the cycle above); no-op where absent."""
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


async def drop_all(app: web.Application) -> None:
    """Drop every client abruptly so that it reconnects (to another pod) and resumes."""
    for request, ws in list(app[CLIENTS].values()):
        if ws is not None:
            await ws.close(code=1012, message=b"server restarting")
        elif request.transport is not None:
            request.transport.abort()
        else:
            continue
        request.task.cancel()  # its session may be idle, waiting for the next event
