"""Request metrics by route template: ``agentwire_<service>_http_requests_total`` and
``agentwire_<service>_http_request_duration_seconds``, both labelled ``route`` and ``method``
(the counter also ``status``).

``<service>`` is the service that owns the matched handler, read from its module
(``agentwire.ingest.routes`` → ``ingest``), so the local gateway, which serves ingest and edge
routes on one port, reports each under its own name, like every other ingest and edge metric.
Operational routes (``/health``, ``/readiness``, ``/metrics``, owned by the shared library) and
paths that match no route are not counted: probes and scrapes would drown the API's rates, and
unmatched paths would make the ``route`` label unbounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_GONE = 499
"""Status recorded when the handler is cancelled because the client went away (nginx's 499)."""

NOT_COUNTED = frozenset({"service", "kafka", "schema", "auth"})
"""Packages of the shared library: their routes belong to no one service."""


def owner_of(request: web.Request) -> tuple[str, str] | None:
    """``(service, route template)`` of the request's matched handler, or None if not counted."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    module = getattr(request.match_info.handler, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "agentwire" or parts[1] in NOT_COUNTED:
        return None
    return parts[1], resource.canonical


def _families(service: str) -> tuple[Counter, Histogram]:
    requests = counter(
        f"agentwire_{service}_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
    )
    duration = histogram(
        f"agentwire_{service}_http_request_duration_seconds",
        "Time from request received to handler done (streams: the stream's lifetime)",
        ["route", "method"],
        buckets=LATENCY_BUCKETS,
    )
    return requests, duration


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request to a service's own routes (place it outermost)."""
    owner = owner_of(request)
    if owner is None:
        return await handler(request)
    service, route = owner
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        requests, duration = _families(service)
        requests.labels(route, request.method, str(status)).inc()
        duration.labels(route, request.method).observe(time.perf_counter() - started)
