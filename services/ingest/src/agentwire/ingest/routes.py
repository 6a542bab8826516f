"""HTTP routes of the task API (CONTRACT.md, "Tasks")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agentwire.ingest.keys import TASKS
from agentwire.ingest.openapi import MAX_OFFSET, STATUS_NAMES, openapi_document
from agentwire.ingest.render import control_state, task_status, task_summary
from agentwire.ingest.requests import ControlBody, SubmitTask
from agentwire.ingest.tasks import IdempotencyConflict
from agentwire.ingest.web import int_param as _int_param
from agentwire.ingest.web import json_response as _json
from agentwire.ingest.web import limited as _limited
from agentwire.ingest.web import own_task as _own_task
from agentwire.ingest.web import read_body as _body
from agentwire.schema import CancelTask, PauseTask, ResumeTask, TaskState, TaskStatus
from agentwire.service.http import ApiError
from agentwire.store import InvalidCursor

routes = web.RouteTableDef()

HIDDEN_IN_HISTORY = frozenset({"LLM_PARTIAL", "LLM_PROMPT"})


async def _submit(request: web.Request) -> tuple[TaskState, bool, dict[str, str]]:
    principal, limits = _limited(request)
    body = await _body(request, SubmitTask)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255):
        raise ApiError(400, "Idempotency-Key must be 1-255 characters")
    try:
        state, cached = await request.app[TASKS].submit(body, principal.tenant, key)
    except IdempotencyConflict as exc:
        raise ApiError(422, str(exc)) from None
    return state, cached, limits


@routes.post("/api/v1/tasks")
async def submit_task(request: web.Request) -> web.Response:
    state, cached, limits = await _submit(request)
    headers = {"X-Workflow-ID": state.workflow_id, "X-Session-ID": state.task.session_id, **limits}
    if cached:
        headers["X-Idempotency-Cached"] = "true"
    body = {
        "task_id": state.workflow_id,
        "workflow_id": state.workflow_id,
        "status": "STATUS_CODE_OK",
        "message": "Task submitted successfully",
        "created_at": state.task.created_at,
    }
    return _json(body, headers=headers)


@routes.post("/api/v1/tasks/stream")
async def submit_and_stream(request: web.Request) -> web.Response:
    state, cached, limits = await _submit(request)
    stream_url = f"/api/v1/stream/sse?workflow_id={state.workflow_id}"
    headers = {
        "X-Workflow-ID": state.workflow_id,
        "X-Session-ID": state.task.session_id,
        "Link": f"<{stream_url}>; rel=stream",
        **limits,
    }
    if cached:
        headers["X-Idempotency-Cached"] = "true"
    body = {"workflow_id": state.workflow_id, "task_id": state.workflow_id, "stream_url": stream_url}
    return _json(body, status=201, headers=headers)


@routes.get("/api/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    principal, limits = _limited(request)
    query = request.query
    limit = _int_param(query.get("limit"), "limit", default=20, low=1, high=100)
    offset = _int_param(query.get("offset"), "offset", default=0, low=0, high=MAX_OFFSET)
    status = _status_param(query.get("status"))
    session_id = query.get("session_id") or None
    cursor = query.get("cursor") or None
    if cursor is not None and offset:
        raise ApiError(400, "use either cursor or offset, not both")
    try:
        page = await request.app[TASKS].list(
            principal.tenant, status=status, session_id=session_id, limit=limit, offset=offset, cursor=cursor
        )
    except InvalidCursor as exc:
        raise ApiError(400, str(exc)) from None
    body: dict[str, Any] = {"tasks": [task_summary(s) for s in page.tasks], "total_count": page.total_count}
    if page.next_cursor is not None:
        body["next_cursor"] = page.next_cursor
    return _json(body, headers=limits)


@routes.get("/api/v1/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    _, state = await _own_task(request)
    return _json(task_status(state))


@routes.get("/api/v1/tasks/{task_id}/events")
async def get_task_events(request: web.Request) -> web.Response:
    _, state = await _own_task(request)
    limit = _int_param(request.query.get("limit"), "limit", default=50, low=1, high=200)
    offset = _int_param(request.query.get("offset"), "offset", default=0, low=0, high=MAX_OFFSET)
    events = await request.app[TASKS].history(state)
    visible = [e for e in events if e["type"] not in HIDDEN_IN_HISTORY]
    page = visible[offset : offset + limit]
    return _json({"events": page, "count": len(page)})


@routes.post("/api/v1/tasks/{task_id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    principal, limits = _limited(request)
    principal, state = await _own_task(request, principal)
    body = await _body(request, ControlBody, optional=True)
    if state.status.terminal:
        message = f"Task already finished ({state.status.value})"
        return _json({"success": False, "message": message}, status=202, headers=limits)
    command = CancelTask(workflow_id=state.workflow_id, reason=body.reason or "", requested_by=principal.key_name)
    await request.app[TASKS].control(state, command)
    return _json({"success": True, "message": "Cancellation requested"}, status=202, headers=limits)


@routes.post("/api/v1/tasks/{task_id}/pause")
async def pause_task(request: web.Request) -> web.Response:
    principal, limits = _limited(request)
    principal, state = await _own_task(request, principal)
    body = await _body(request, ControlBody, optional=True)
    if state.status.terminal or state.control.is_paused or state.status == TaskStatus.PAUSED:
        raise ApiError(409, f"Task cannot be paused ({state.status.value})")
    command = PauseTask(workflow_id=state.workflow_id, reason=body.reason or "", requested_by=principal.key_name)
    await request.app[TASKS].control(state, command)
    body_out = {"success": True, "message": "Pause requested", "task_id": state.workflow_id}
    return _json(body_out, status=202, headers=limits)


@routes.post("/api/v1/tasks/{task_id}/resume")
async def resume_task(request: web.Request) -> web.Response:
    principal, limits = _limited(request)
    principal, state = await _own_task(request, principal)
    body = await _body(request, ControlBody, optional=True)
    if state.status.terminal or not (state.control.is_paused or state.status == TaskStatus.PAUSED):
        raise ApiError(409, f"Task is not paused ({state.status.value})")
    command = ResumeTask(workflow_id=state.workflow_id, reason=body.reason or "", requested_by=principal.key_name)
    await request.app[TASKS].control(state, command)
    body_out = {"success": True, "message": "Resume requested", "task_id": state.workflow_id}
    return _json(body_out, status=202, headers=limits)


@routes.get("/api/v1/tasks/{task_id}/control-state")
async def get_control_state(request: web.Request) -> web.Response:
    _, state = await _own_task(request)
    return _json(control_state(state))


@routes.get("/openapi.json")
async def openapi(_: web.Request) -> web.Response:
    return _json(openapi_document())


def _status_param(raw: str | None) -> TaskStatus | None:
    """A status by the names the document lists: ``TASK_STATUS_COMPLETED``, ``COMPLETED``, ``completed``."""
    if not raw:
        return None
    if raw not in STATUS_NAMES:
        raise ApiError(400, f"unknown status {raw!r}")
    name = raw.upper()
    return TaskStatus(name if name.startswith("TASK_STATUS_") else f"TASK_STATUS_{name}")
