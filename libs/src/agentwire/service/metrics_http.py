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

import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, histogram

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


def observe_request(owner: tuple[str, str], method: str, status: int, started: float) -> None:
    """Count and time one request to a service's own route (``owner``: what ``owner_of`` said).

    Called by the service middleware (http.py) when the handler is done; ``started`` is its
    ``time.perf_counter()`` when the request came in, ``status`` CLIENT_GONE when the handler was
    cancelled because the client left.
    """
    service, route = owner
    requests, duration = _families(service)
    requests.labels(route, method, str(status)).inc()
    duration.labels(route, method).observe(time.perf_counter() - started)
