"""HTTP routes of the OpenAI-compatible API.

Errors use OpenAI's shape, ``{"error": {"message", "type", "code"}}`` (the Shannon SDK reads
``error.message`` from it too). Authentication is the task API's (``Authorization: Bearer <key>``
is what OpenAI clients send). Chat completions submit a task, so they are rate limited like
submissions, and one ingest process follows at most ``openai.max_concurrent`` of them at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from agentwire.auth import Unauthorized
from agentwire.ingest.chat.models import MODELS, ChatCompletionRequest, Model, NoUserMessage, to_task
from agentwire.ingest.chat.replies import ChatReply
from agentwire.ingest.keys import CHAT_SLOTS, SETTINGS, TASKS
from agentwire.ingest.web import json_response, limited, principal_of, read_body
from agentwire.schema import TaskState, dumps
from agentwire.service.http import TRACE_HEADER, ApiError, valid_id

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               409: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


class OpenAIError(ApiError):
    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code


def openai_errors(handler: Handler) -> Handler:
    """Answer errors in OpenAI's shape (the service's error middleware would write ``{"error": str}``)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Unauthorized as exc:
            return _error(401, str(exc), "invalid_api_key")
        except OpenAIError as exc:
            return _error(exc.status, exc.message, exc.code, exc.headers)
        except ApiError as exc:
            code = "rate_limit_exceeded" if exc.status == 429 else "invalid_request"
            return _error(exc.status, exc.message, code, exc.headers)

    wrapped.__name__ = handler.__name__
    wrapped.__module__ = handler.__module__
    return wrapped


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "code": code}}
    return json_response(body, status=status, headers=headers)


def _model(name: str | None, request: web.Request) -> Model:
    model_id = name or request.app[SETTINGS].openai.default_model
    model = MODELS.get(model_id)
    if model is None:
        raise OpenAIError(404, f"Model '{model_id}' not found; GET /v1/models lists the models", "model_not_found")
    return model


@routes.get("/v1/models")
@openai_errors
async def list_models(request: web.Request) -> web.Response:
    principal_of(request)
    return json_response({"object": "list", "data": [m.card() for m in MODELS.values()]})


@routes.get("/v1/models/{model}")
@openai_errors
async def get_model(request: web.Request) -> web.Response:
    principal_of(request)
    model = _model(request.match_info["model"], request)
    return json_response(model.card(), headers={"X-Model-Description": model.description})


@routes.post("/v1/chat/completions")
@openai_errors
async def chat_completions(request: web.Request) -> web.StreamResponse:
    principal, limits = limited(request)
    body: ChatCompletionRequest = await read_body(request, ChatCompletionRequest)
    model = _model(body.model, request)
    session = request.headers.get("X-Session-ID")
    try:
        task = to_task(body, model, valid_id(session, "X-Session-ID") if session else None)
    except NoUserMessage as exc:
        raise OpenAIError(400, str(exc), "invalid_request") from None
    except ValidationError as exc:
        raise OpenAIError(400, f"invalid request: {exc.errors()[0]['msg']}", "invalid_request") from None
    slots = request.app[CHAT_SLOTS]
    if slots.locked():
        raise OpenAIError(429, "Too many chat completions in progress; retry shortly", "rate_limit_exceeded",
                          {"Retry-After": "1", **limits})
    async with slots:
        state, _ = await request.app[TASKS].submit(task, principal.tenant, None)
        headers = {"X-Workflow-ID": state.workflow_id, "X-Session-ID": state.task.session_id, **limits}
        reply = ChatReply(model.id, int(time.time()), include_usage=body.include_usage,
                          include_events=body.include_events)
        if body.stream:
            return await _stream(request, state, reply, headers)
        async for event in request.app[TASKS].follow(state):
            if event is not None:
                reply.on_event(event)
        if reply.error is not None:
            raise OpenAIError(500, f"Task {state.workflow_id} did not complete: {reply.error}", "task_failed", headers)
        return json_response(reply.completion(), headers=headers)


async def _stream(request: web.Request, state: TaskState, reply: ChatReply,
                  headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        TRACE_HEADER: request.get("trace_id", ""), **headers})
    await response.prepare(request)
    keepalive = request.app[SETTINGS].streaming.keepalive_s
    loop = asyncio.get_running_loop()
    last_write = loop.time()
    async for event in request.app[TASKS].follow(state):
        chunks = reply.on_event(event) if event is not None else []
        if reply.ended:
            chunks += reply.closing()
        if chunks:
            await response.write(b"".join(_frame(c) for c in chunks))
            last_write = loop.time()
        elif loop.time() - last_write >= keepalive:
            await response.write(b": keepalive\n\n")
            last_write = loop.time()
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + dumps(chunk) + b"\n\n"
