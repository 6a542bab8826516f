"""The entry point every HTTP service shares: settings, topics, then serve until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from agentwire.kafka import ensure_topics
from agentwire.service.lifecycle import configure_logging, run, serve
from agentwire.service.settings import Settings, load_settings


def run_http_service(create_app: Callable[[Settings], web.Application], *, streams: bool = False) -> None:
    """Serve ``create_app(settings)``; with ``streams``, a handler ends as soon as its client leaves.

    Stream handlers otherwise notice a departed client only at their next write (a keepalive, up to
    ``streaming.keepalive_s`` later).
    """
    configure_logging()
    settings = load_settings()

    async def serve_app(stop: asyncio.Event) -> None:
        await ensure_topics(settings.kafka)
        await serve(create_app(settings), settings.http.host, settings.http.port, stop, handler_cancellation=streams)

    run(serve_app, settings.event_loop)
