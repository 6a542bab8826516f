"""Entry point: ``agentwire-edge``."""

from __future__ import annotations

import asyncio

from agentwire.edge.app import create_app
from agentwire.kafka import ensure_topics
from agentwire.service import configure_logging, load_settings, run, serve


def main() -> None:
    configure_logging()
    settings = load_settings()

    async def serve_edge(stop: asyncio.Event) -> None:
        await ensure_topics(settings.kafka)
        # a stream's session ends as soon as its client disconnects, not at its next write
        await serve(create_app(settings), settings.http.host, settings.http.port, stop, handler_cancellation=True)

    run(serve_edge)
