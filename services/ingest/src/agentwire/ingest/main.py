"""Entry point: ``agentwire-ingest``."""

from __future__ import annotations

import asyncio

from agentwire.ingest.app import create_app
from agentwire.kafka import ensure_topics
from agentwire.service import configure_logging, load_settings, run, serve


def main() -> None:
    configure_logging()
    settings = load_settings()

    async def serve_ingest(stop: asyncio.Event) -> None:
        await ensure_topics(settings.kafka)
        await serve(create_app(settings), settings.http.host, settings.http.port, stop)

    run(serve_ingest)
