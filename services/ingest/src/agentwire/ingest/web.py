"""What every ingest route does first: authenticate, rate-limit, read a JSON body, find a task."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from agentwire.auth import Principal
from agentwire.ingest.keys import AUTH, LIMITER, TASKS
from agentwire.schema import TaskState, dumps
from agentwire.service.http import ApiError, valid_id


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json", headers=headers)


def principal_of(request: web.Request) -> Principal:
    return request.app[AUTH].authenticate(request)


async def read_body(request: web.Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    """The request's JSON object as ``model``; a 400 ApiError naming the first invalid field."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return model()
        raise ApiError(400, "request body is required")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"invalid {where}: {first['msg']}") from None


def limited(request: web.Request) -> tuple[Principal, dict[str, str]]:
    """Authenticate and take one request from the caller's rate limit; its headers."""
    principal = principal_of(request)
    return principal, request.app[LIMITER].check(principal)


async def own_task(request: web.Request, principal: Principal | None = None, *, param: str = "task_id",
                   not_found: str = "Task not found") -> tuple[Principal, TaskState]:
    """The caller's task named by the path parameter ``param``; 404 if unknown or another tenant's."""
    principal = principal or principal_of(request)
    task_id = valid_id(request.match_info[param], "task id")
    state = await request.app[TASKS].find(task_id, principal.tenant)
    if state is None:
        raise ApiError(404, not_found)
    return principal, state


def int_param(raw: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None:
        return default  # absent; an empty value is no integer (400), as the document says
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value
