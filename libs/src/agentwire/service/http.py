"""HTTP conventions shared by ingest and edge: trace ids, JSON errors, id validation.

Domain errors become status codes here, in one middleware.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp_cors
from aiohttp import web
from aiokafka.errors import KafkaError

from agentwire.auth import Unauthorized
from agentwire.service.metrics_http import CLIENT_GONE, observe_request, owner_of
from agentwire.service.settings import Settings

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9:_\-.]{1,128}$")
TRACE_HEADER = "X-Trace-ID"

CORS_ALLOW_HEADERS = (
    "Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "Last-Event-ID", "traceparent",
)
CORS_EXPOSE_HEADERS = (
    "X-Workflow-ID", "X-Session-ID", "X-Trace-ID", "X-Idempotency-Cached", "Link", "Retry-After",
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error with a status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def valid_id(value: str | None, name: str) -> str:
    """Return ``value`` if it is a valid task/workflow id, else raise a 400."""
    if value is None or value == "":
        raise ApiError(400, f"{name} is required")
    if not ID_PATTERN.match(value):
        raise ApiError(400, f"invalid {name}")
    return value


def trace_id_of(request: web.Request) -> str:
    traceparent = request.headers.get("traceparent", "")
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return uuid.uuid4().hex


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request of a service: metrics (metrics_http.py), a trace id, domain errors as JSON.

    One middleware, not three: a stream request holds its chain of coroutine frames for as long as the
    client stays (docs/performance.md, "Memory per held SSE client"). In order, from the outside in: the
    request is counted with the status the client got (an error's translation, or CLIENT_GONE when the
    handler was cancelled); the response, or an HTTP exception that passes through, carries the trace id
    (streaming handlers prepare their response themselves and copy ``request["trace_id"]``); and domain
    errors become JSON responses (``_error_response``).
    """
    started = time.perf_counter()
    status = 500
    trace_id = request["trace_id"] = trace_id_of(request)
    try:
        try:
            response = await handler(request)
        except (ApiError, Unauthorized, ConnectionResetError, KafkaError, web.HTTPException) as exc:
            error = _error_response(request, exc)
            if error is None:
                raise
            response = error
        if not response.prepared:
            response.headers.setdefault(TRACE_HEADER, trace_id)
        status = response.status
        return response
    except web.HTTPException as exc:
        exc.headers.setdefault(TRACE_HEADER, trace_id)
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        owner = owner_of(request)  # only now: a stream would hold it for its lifetime
        if owner is not None:
            observe_request(owner, request.method, status, started)


def _error_response(request: web.Request, exc: Exception) -> web.Response | None:
    """The JSON answer to an error a handler raised; None when the exception should pass through."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.message, exc.headers)
    if isinstance(exc, Unauthorized):
        return json_error(401, str(exc))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return json_error(413, "Request body too large")
    if isinstance(exc, ConnectionResetError):  # the client left while its request was read: nobody to answer
        log.info("%s %s: client left before its request was read", request.method, request.path)
        return json_error(400, "connection lost")
    if isinstance(exc, KafkaError):  # the broker is unreachable or failing: nothing was accepted, retry later
        log.warning("%s %s: Kafka unavailable: %r", request.method, request.path, exc)
        return json_error(503, "Service temporarily unavailable (Kafka); retry later", {"Retry-After": "1"})
    if isinstance(exc, web.HTTPException) and exc.status >= 400 and exc.content_type != "application/json":
        return json_error(exc.status, exc.reason, {k: v for k, v in exc.headers.items() if k == "Allow"})
    return None


def base_app(settings: Settings) -> web.Application:
    """An application with agentwire's middlewares and body-size cap."""
    return web.Application(
        middlewares=[service_middleware],
        client_max_size=settings.http.max_body_bytes,
    )


def enable_cors(app: web.Application, settings: Settings) -> None:
    """Answer browsers' CORS preflights (200, no auth) and add CORS headers to every route.

    Call once, after every route of ``app`` has been added.
    """
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in settings.http.cors_origins})
    for route in list(app.router.routes()):
        if route.method != "HEAD":
            cors.add(route)
