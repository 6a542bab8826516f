"""Composition root of the edge service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from agentwire.auth import Authenticator
from agentwire.edge import clients, heap
from agentwire.edge.hub import LiveHub
from agentwire.edge.keys import AUTH, CLIENTS, HUB, LOG, SETTINGS
from agentwire.edge.recent import RecentCache
from agentwire.edge.streams import routes
from agentwire.kafka.history import EventLog
from agentwire.service.http import base_app, enable_cors
from agentwire.service.ops import add_ops_routes
from agentwire.service.settings import Settings
from agentwire.store.web import setup_store, store_ready


def create_app(settings: Settings) -> web.Application:
    """The edge application on its own; nothing connects until it starts."""
    app = base_app(settings)
    setup(app, settings)
    add_ops_routes(app, "edge", lambda: is_ready(app))
    enable_cors(app, settings)
    return app


def setup(app: web.Application, settings: Settings) -> None:
    """Add the stream routes and their resources to ``app`` (also used by the gateway)."""
    app[SETTINGS] = settings
    app[AUTH] = Authenticator.from_settings(settings)
    app[CLIENTS] = {}
    app.add_routes(routes)
    setup_store(app, settings)
    app.cleanup_ctx.append(_kafka)
    app.on_shutdown.append(clients.drop_all)


def is_ready(app: web.Application) -> bool:
    hub = app.get(HUB)
    return store_ready(app) and hub is not None and hub.ready


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    streaming = settings.streaming
    cache = RecentCache(max_bytes=streaming.recent_cache_mb << 20, max_events=streaming.recent_cache_events)
    hub = LiveHub(settings.kafka, cache=cache, keepalive_s=streaming.keepalive_s)
    log = EventLog(settings.kafka, readers=settings.streaming.history_readers)
    await log.start()
    await hub.start()
    app[HUB], app[LOG] = hub, log
    heap.settle()  # started: from here on the process mostly holds clients (heap.py)
    try:
        yield
    finally:
        await hub.stop()
        await log.stop()
