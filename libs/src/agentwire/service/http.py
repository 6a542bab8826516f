"""HTTP conventions shared by ingest and edge: trace ids, JSON errors, id validation.

Domain errors become status codes here, in one middleware.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable

import aiohttp_cors
from aiohttp import web
from aiokafka.errors import KafkaError

from agentwire.auth import Unauthorized
from agentwire.service.metrics_http import http_metrics_middleware
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
async def trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace_id = trace_id_of(request)
    request["trace_id"] = trace_id

    # Streaming handlers prepare their response themselves and copy request["trace_id"].
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.setdefault(TRACE_HEADER, trace_id)
        raise
    if not response.prepared:
        response.headers.setdefault(TRACE_HEADER, trace_id)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message, exc.headers)
    except Unauthorized as exc:
        return json_error(401, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "Request body too large")
    except ConnectionResetError:  # the client left while its request was read: nobody to answer
        log.info("%s %s: client left before its request was read", request.method, request.path)
        return json_error(400, "connection lost")
    except KafkaError as exc:  # the broker is unreachable or failing: nothing was accepted, retry later
        log.warning("%s %s: Kafka unavailable: %r", request.method, request.path, exc)
        return json_error(503, "Service temporarily unavailable (Kafka); retry later", {"Retry-After": "1"})
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, exc.reason, {k: v for k, v in exc.headers.items() if k == "Allow"})
        raise


def base_app(settings: Settings) -> web.Application:
    """An application with agentwire's middlewares and body-size cap."""
    return web.Application(
        middlewares=[http_metrics_middleware, trace_middleware, error_middleware],
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
