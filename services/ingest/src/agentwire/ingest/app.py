"""Composition root of the ingest service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from agentwire import webui
from agentwire.auth import Authenticator
from agentwire.ingest import interactive, session_routes
from agentwire.ingest.chat import routes as chat
from agentwire.ingest.faults import FaultHook
from agentwire.ingest.interactions import Interactions
from agentwire.ingest.keys import AUTH, CHAT_SLOTS, FAULT, INTERACTIONS, LIMITER, SESSIONS, SETTINGS, TASKS
from agentwire.ingest.ratelimit import RateLimiter
from agentwire.ingest.routes import routes
from agentwire.ingest.sessions import SessionService
from agentwire.ingest.tasks import TaskService
from agentwire.kafka import make_producer
from agentwire.kafka.history import EventLog
from agentwire.service.http import base_app, enable_cors
from agentwire.service.ops import add_ops_routes
from agentwire.service.settings import Settings
from agentwire.store.web import STORE, setup_store


def create_app(settings: Settings) -> web.Application:
    """The ingest application on its own; nothing connects until it starts."""
    app = base_app(settings)
    setup(app, settings)
    webui.setup(app)  # the dashboard lives on the base URL, which an Ingress sends to ingest
    add_ops_routes(app, "ingest", lambda: is_ready(app))
    enable_cors(app, settings)
    return app


def setup(app: web.Application, settings: Settings) -> None:
    """Add ingest's routes and resources to ``app`` (also used by the local gateway)."""
    app[SETTINGS] = settings
    app[AUTH] = Authenticator.from_settings(settings)
    app[LIMITER] = RateLimiter(settings.rate_limits.per_minute)
    app[FAULT] = FaultHook.from_settings(settings)
    app.add_routes(routes)
    app.add_routes(interactive.routes)
    app.add_routes(chat.routes)
    app.add_routes(session_routes.routes)
    setup_store(app, settings)
    app.cleanup_ctx.append(_kafka)


def is_ready(app: web.Application) -> bool:
    tasks = app.get(TASKS)
    return tasks is not None and tasks.ready


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    producer = make_producer(settings.kafka)
    log = EventLog(settings.kafka, readers=2)
    await producer.start()
    await log.start()
    app[TASKS] = TaskService(
        producer,
        app[STORE].tasks,
        log,
        settings.kafka.topics,
        lookup_timeout=settings.http.read_your_writes_timeout_s,
        partitions=settings.kafka.partitions,
        fault=app[FAULT],
    )
    app[INTERACTIONS] = Interactions(app[TASKS])
    app[SESSIONS] = SessionService(app[TASKS], app[STORE].tasks, producer, settings.kafka.topics,
                                   partitions=settings.kafka.partitions)
    app[CHAT_SLOTS] = asyncio.Semaphore(settings.openai.max_concurrent)
    try:
        yield
    finally:
        await log.stop()
        await producer.stop()
