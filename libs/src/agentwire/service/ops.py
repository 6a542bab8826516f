"""Health, readiness and Prometheus metrics routes shared by every service."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

Readiness = Callable[[], bool]


def add_ops_routes(
    app: web.Application,
    service: str,
    ready: Readiness,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Add ``/health``, ``/readiness`` and ``/metrics`` to ``app`` (no auth on any)."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "service": service})

    async def readiness(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health", health)
    app.router.add_get("/readiness", readiness)
    app.router.add_get("/metrics", metrics)


def ops_app(service: str, ready: Readiness) -> web.Application:
    """A small app for workers (runner, processor) that have no API of their own."""
    app = web.Application()
    add_ops_routes(app, service, ready)
    return app
