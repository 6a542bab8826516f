"""The entry point every HTTP service shares: settings, topics, then serve until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from agentwire.service.lifecycle import (
    configure_logging,
    fix_malloc_mmap_threshold,
    raise_open_files_limit,
    run,
    serve,
)
from agentwire.service.settings import Settings, load_settings
from agentwire.service.waiting import topics_when_kafka_answers


def run_http_service(
    service: str, create_app: Callable[[Settings], web.Application], *, streams: bool = False
) -> None:
    """Serve ``create_app(settings)``; with ``streams``, a handler ends as soon as its client leaves.

    Until Kafka answers, the port serves only the probes (/readiness says 503). Stream handlers otherwise
    notice a departed client only at their next write (a keepalive, up to ``streaming.keepalive_s`` later).
    """
    configure_logging()
    fix_malloc_mmap_threshold()
    raise_open_files_limit()
    settings = load_settings()

    async def serve_app(stop: asyncio.Event) -> None:
        http = settings.http
        if await topics_when_kafka_answers(settings.kafka, stop, service=service, host=http.host, port=http.port):
            await serve(create_app(settings), http.host, http.port, stop, handler_cancellation=streams,
                        idle_timeout_s=http.idle_timeout_s, backlog=http.listen_backlog, access_log=http.access_log,
                        exact_timers=streams)

    run(serve_app, settings.event_loop)
