"""aiohttp's access log: off unless ``http.access_log`` (service/lifecycle.py ``serve``).

A line per request cost ingest ≈ 10 % of its CPU under load (docs/performance.md); every request
is counted by the metrics anyway. Off, a request writes nothing on ``aiohttp.access``; on, one line.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from agentwire.service.lifecycle import serve
from agentwire.service.settings import HttpSettings
from tests.support.stack import free_port
from tests.support.wait import eventually_async


def test_access_log_is_off_by_default() -> None:
    assert HttpSettings().access_log is False


@pytest.mark.parametrize("access_log", [False, True])
async def test_serve_logs_requests_only_when_asked(access_log: bool, caplog: pytest.LogCaptureFixture) -> None:
    async def ping(_request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(app, "127.0.0.1", port, stop, access_log=access_log))
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        async with aiohttp.ClientSession() as session:
            async def answered() -> bool:  # the listener is up once a connect succeeds
                try:
                    async with session.get(f"http://127.0.0.1:{port}/ping") as response:
                        return await response.text() == "pong"
                except aiohttp.ClientConnectionError:
                    return False

            await eventually_async(answered, 10, "the server answered")
    finally:
        stop.set()
        await server
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == (1 if access_log else 0)
    if access_log:
        assert "GET /ping" in lines[0].getMessage()
