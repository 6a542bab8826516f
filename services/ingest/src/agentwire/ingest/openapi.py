"""The OpenAPI 3.1 document of the whole public API (ingest and edge routes).

Request bodies come from the pydantic models' JSON schemas; responses and parameters from the
path table below, which follows CONTRACT.md.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from agentwire.ingest.chat.models import ChatCompletionRequest
from agentwire.ingest.requests import ApprovalDecisionBody, ControlBody, SubmitTask, SwarmMessageBody
from agentwire.schema import TaskStatus

REF = "#/components/schemas/{model}"
ID_REGEX = r"^[A-Za-z0-9:_\-.]{1,128}$"  # CONTRACT.md: ids in paths and workflow_id


class StreamTokenRequest(BaseModel):
    """Body of POST /api/v1/stream/token."""

    workflow_id: str = Field(min_length=1, max_length=128, pattern=ID_REGEX)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ANY_OBJ = {"type": "object", "additionalProperties": True}

RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({"error": STR}, ["error"]),
    "SubmitResponse": _obj(
        {"task_id": STR, "workflow_id": STR, "status": STR, "message": STR, "created_at": STR},
        ["task_id", "workflow_id", "status"],
    ),
    "SubmitAndStreamResponse": _obj({"workflow_id": STR, "task_id": STR, "stream_url": STR}),
    "Usage": _obj(
        {"total_tokens": INT, "input_tokens": INT, "output_tokens": INT, "estimated_cost": {"type": "number"}}
    ),
    "TaskStatus": {"type": "string", "enum": [s.value for s in TaskStatus]},
    "Task": _obj(
        {
            "task_id": STR, "workflow_id": STR, "status": _ref("TaskStatus"),
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "result": NSTR, "error": NSTR, "query": STR, "session_id": STR, "mode": STR,
            "context": ANY_OBJ, "model_used": NSTR, "provider": NSTR, "usage": _ref("Usage"),
            "metadata": ANY_OBJ, "created_at": STR, "updated_at": NSTR,
        },
        ["task_id", "workflow_id", "status"],
    ),
    "TaskSummary": _obj(
        {"task_id": STR, "query": STR, "status": _ref("TaskStatus"), "mode": STR, "created_at": STR,
         "completed_at": STR,
         "total_token_usage": _obj({"total_tokens": INT, "prompt_tokens": INT, "completion_tokens": INT,
                                    "cost_usd": {"type": "number"}})},
    ),
    "TaskList": _obj({"tasks": {"type": "array", "items": _ref("TaskSummary")}, "total_count": INT,
                      "next_cursor": STR}),
    "Event": _obj(
        {"workflow_id": STR, "type": STR, "agent_id": NSTR, "message": NSTR, "payload": ANY_OBJ,
         "timestamp": STR, "seq": INT, "stream_id": STR},
        ["workflow_id", "type", "timestamp", "seq", "stream_id"],
    ),
    "EventPage": _obj({"events": {"type": "array", "items": _ref("Event")}, "count": INT}),
    "ControlResult": _obj({"success": BOOL, "message": STR, "task_id": STR}, ["success"]),
    "ControlState": _obj(
        {"is_paused": BOOL, "is_cancelled": BOOL, "paused_at": STR, "pause_reason": NSTR, "paused_by": NSTR,
         "cancel_reason": NSTR, "cancelled_by": NSTR}
    ),
    "StreamToken": _obj({"token": STR, "expires_at": STR}, ["token", "expires_at"]),
    "Status": _obj({"status": STR}, ["status"]),
}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {400: "Invalid request", 401: "Missing or invalid credentials", 404: "Task not found",
             409: "Not applicable in the task's state", 413: "Body too large", 422: "Idempotency-Key reused",
             429: "Rate limit exceeded", 503: "Not ready"}
    return {str(s): _json("Error", names[s]) for s in statuses}


def _query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ID_REGEX}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": ID}
# The list filter takes a status by its full name or its short name (either case).
STATUS_NAMES = sorted({name for s in TaskStatus for short in [s.value.removeprefix("TASK_STATUS_")]
                       for name in (s.value, short, short.lower())})
MAX_OFFSET = 10**9
# Mirrors agentwire.edge.resume.RESUME_REGEX (ingest does not import the edge).
# (a session stream's cursor is several <partition>-<offset> pairs joined by ".")
RESUME = {"type": "string",
          "pattern": r"^[ \t]*([0-9]{1,18}|[0-9]{1,9}-[0-9]{1,18}(\.[0-9]{1,9}-[0-9]{1,18})*)?[ \t]*$"}
STREAM_PARAMS = [
    _query("workflow_id", ID, "the workflow to stream (this or session_id is required)"),
    _query("session_id", ID, "stream every workflow of the session instead; ids are then session cursors"),
    _query("types", STR, "comma-separated event types (SSE names accepted as aliases)"),
    _query("last_event_id", RESUME, "resume after this <partition>-<offset> id or seq number"),
    _query("api_key", STR, "API key (stream routes only)"),
    _query("token", STR, "stream token from POST /api/v1/stream/token, or an API key"),
    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": RESUME,
     "description": "resume point; wins over last_event_id"},
]
# Each SSE event as a client parses it: `done` carries [DONE], every other event one JSON object that
# names its workflow (a session stream's "Session not found" frame names the session instead).
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": STR, "id": STR, "retry": INT, "data": STR},
    "if": {"properties": {"event": {"const": "done"}}},
    "then": {"properties": {"data": {"const": "[DONE]"}}},
    "else": {"properties": {"data": {"contentMediaType": "application/json",
                                     "contentSchema": {"type": "object", "anyOf": [
                                         {"required": ["workflow_id"]}, {"required": ["session_id"]}]}}}},
}
LIMITED = {"description": "Rate limited per API key; answers carry X-RateLimit-* headers."}


def _task_links(id_field: str) -> dict[str, Any]:
    """What a client can do next with a task it just submitted (schemathesis follows these).

    The stream route is left out: a live task's stream lasts as long as the task.
    """
    task_id = {"task_id": f"$response.body#/{id_field}"}
    workflow_id = {"workflow_id": f"$response.body#/{id_field}"}
    return {
        "GetTask": {"operationId": "getTask", "parameters": task_id},
        "GetTaskEvents": {"operationId": "getTaskEvents", "parameters": task_id},
        "GetControlState": {"operationId": "getControlState", "parameters": task_id},
        "PauseTask": {"operationId": "pauseTask", "parameters": task_id},
        "ResumeTask": {"operationId": "resumeTask", "parameters": task_id},
        "CancelTask": {"operationId": "cancelTask", "parameters": task_id},
        "StreamToken": {"operationId": "streamToken", "requestBody": workflow_id},
    }


def _linked(response: dict[str, Any], id_field: str) -> dict[str, Any]:
    return {**response, "links": _task_links(id_field)}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _paths() -> dict[str, Any]:
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "the same key, tenant and body within 24 h answers the first response again"}

    def ctrl(verb: str, conflict: bool) -> dict[str, Any]:
        errors = (400, 401, 404, 409, 429) if conflict else (400, 401, 404, 429)
        return {"parameters": [TASK_ID], "post": {
            "operationId": f"{verb}Task", "summary": f"{verb.capitalize()} a task. {LIMITED['description']}",
            "requestBody": _body("ControlBody", required=False),
            "responses": {"202": _json("ControlResult", "Accepted"), **_errors(*errors)}}}

    ops = {"security": []}
    return {
        "/api/v1/tasks": {
            "post": {"operationId": "submitTask", "summary": f"Submit a task. {LIMITED['description']}",
                     "parameters": [idem], "requestBody": _body("SubmitTask"),
                     "responses": {"200": _linked(_json("SubmitResponse", "Submitted"), "task_id"),
                                   **_errors(400, 401, 413, 422, 429)}},
            "get": {"operationId": "listTasks", "summary": f"List own tasks, newest first. {LIMITED['description']}",
                    "parameters": [
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
                        _query("status", {"type": "string", "enum": STATUS_NAMES}, "a task status name"),
                        _query("session_id", STR),
                        _query("cursor", STR, "next_cursor of the previous page (instead of offset)")],
                    "responses": {"200": _json("TaskList", "Tasks"), **_errors(400, 401, 429)}},
        },
        "/api/v1/tasks/stream": {
            "post": {"operationId": "submitAndStream", "summary": "Submit and get a stream URL (rate limited)",
                     "parameters": [idem], "requestBody": _body("SubmitTask"),
                     "responses": {"201": _linked(_json("SubmitAndStreamResponse", "Submitted"), "workflow_id"),
                                   **_errors(400, 401, 413, 422, 429)}},
        },
        "/api/v1/tasks/{task_id}": {"parameters": [TASK_ID], "get": {
            "operationId": "getTask", "summary": "Task status",
            "responses": {"200": _json("Task", "The task"), **_errors(400, 401, 404)}}},
        "/api/v1/tasks/{task_id}/events": {"parameters": [TASK_ID], "get": {
            "operationId": "getTaskEvents", "summary": "Event history without LLM_PARTIAL and LLM_PROMPT",
            "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                           _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET,
                                              "default": 0})],
            "responses": {"200": _json("EventPage", "Events in seq order"), **_errors(400, 401, 404)}}},
        "/api/v1/tasks/{task_id}/cancel": ctrl("cancel", conflict=False),
        "/api/v1/tasks/{task_id}/pause": ctrl("pause", conflict=True),
        "/api/v1/tasks/{task_id}/resume": ctrl("resume", conflict=True),
        "/api/v1/tasks/{task_id}/control-state": {"parameters": [TASK_ID], "get": {
            "operationId": "getControlState", "summary": "Pause and cancel flags",
            "responses": {"200": _json("ControlState", "Control state"), **_errors(400, 401, 404)}}},
        "/api/v1/stream/sse": {"get": {
            "operationId": "streamSse", "summary": "Server-Sent Events: history, then live, until STREAM_END",
            "parameters": STREAM_PARAMS,
            "responses": {"200": {"description": "text/event-stream; each event's data is one JSON object "
                                                 "(the `done` event's is [DONE])",
                                  "content": {"text/event-stream": {"schema": SSE_EVENT}}}, **_errors(400, 401)}}},
        "/api/v1/stream/ws": {"get": {
            "operationId": "streamWs", "summary": "WebSocket: one Event JSON per text frame; close 1000 at the end",
            "description": "A WebSocket handshake (RFC 6455); a request that is not one answers 400.",
            "parameters": STREAM_PARAMS,
            "responses": {"101": {"description": "Switching protocols"}, **_errors(400, 401)}}},
        "/api/v1/stream/token": {"post": {
            "operationId": "streamToken", "summary": "A short-lived token for ?token= on one workflow's stream",
            "requestBody": _body("StreamTokenRequest"),
            "responses": {"200": _json("StreamToken", "Token"), **_errors(400, 401, 404)}}},
        "/health": {"get": {"operationId": "health", **ops, "responses": {"200": _json("Status", "Healthy")}}},
        "/readiness": {"get": {"operationId": "readiness", **ops, "responses": {
            "200": _json("Status", "Ready"), "503": _json("Status", "Not ready")}}},
        "/metrics": {"get": {"operationId": "metrics", **ops, "responses": {
            "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": STR}}}}}},
        "/openapi.json": {"get": {"operationId": "openapi", **ops, "responses": {
            "200": {"description": "This document", "content": {"application/json": {"schema": ANY_OBJ}}}}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json``."""
    from agentwire.ingest import openapi_interactive as interactive  # it builds on this module's helpers

    models = (SubmitTask, ControlBody, StreamTokenRequest, ApprovalDecisionBody, SwarmMessageBody,
              ChatCompletionRequest)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = {**defs.get("$defs", {}), **RESPONSE_SCHEMAS, **interactive.SCHEMAS}
    task = schemas["Task"]
    schemas["Task"] = {**task, "properties": {**task["properties"], **interactive.task_extras()}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentwire API", "version": "1.0.0",
                 "description": "Shannon-compatible task and streaming API (see CONTRACT.md)."},
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": {**_paths(), **interactive.paths()},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
