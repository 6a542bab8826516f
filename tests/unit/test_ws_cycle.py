"""aiohttp leaves a WebSocket with a heartbeat in a reference cycle; the edge cuts it (edge/clients.py).

aiohttp 3.14's server WebSocket with ``heartbeat=`` hands the connection's protocol a callback to
itself (``set_parser(..., data_received_cb=)``, from aiohttp pull request 12030), and the protocol keeps
it after the connection is lost: the whole connection then waits for a full garbage collection,
which the edge runs rarely. The first test shows the cycle with aiohttp alone (when it fails, aiohttp
no longer builds it and ``clients.release_heartbeat`` can go); the second shows the edge's cut.
"""

from __future__ import annotations

import collections
import gc
import socket

from aiohttp import ClientSession, web

from agentwire.edge.clients import release_heartbeat

CONNECTIONS = 5


async def _cyclic_garbage_after_websockets(cut: bool) -> collections.Counter[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        try:
            await ws.send_str("hello")
            async for _ in ws:
                pass
        finally:
            if cut:
                release_heartbeat(request)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    garbage: collections.Counter[str] = collections.Counter()
    gc.collect()
    gc.disable()
    try:
        async with ClientSession() as http:
            for _ in range(CONNECTIONS):
                async with http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    await ws.receive()
        await runner.cleanup()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage.update(type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("aiohttp.web"))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
    return garbage


async def test_aiohttp_leaves_a_heartbeat_websocket_in_a_reference_cycle() -> None:
    garbage = await _cyclic_garbage_after_websockets(cut=False)
    assert garbage["RequestHandler"] == CONNECTIONS and garbage["WebSocketResponse"] == CONNECTIONS, garbage


async def test_releasing_the_heartbeat_frees_the_connection_by_reference_counting() -> None:
    garbage = await _cyclic_garbage_after_websockets(cut=True)
    assert garbage == {}, garbage
