"""The OpenAPI description of the interactive routes (approvals, swarm messages, timeline, stream link).

Kept apart from ``openapi.py`` (the task and stream routes), which merges these into the document.
"""

from __future__ import annotations

from typing import Any

from agentwire.ingest.openapi import BOOL, ID, INT, MAX_OFFSET, NSTR, STR, TASK_ID, _body, _errors, _json, _obj, _ref

NNUM = {"type": ["number", "null"]}
WORKFLOW_ID = {**TASK_ID, "name": "workflow_id"}
SESSION_ID = {**TASK_ID, "name": "session_id"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "ApprovalDecisionResult": _obj(
        {"success": BOOL, "status": STR, "message": STR, "approval_id": STR, "workflow_id": STR, "approved": BOOL},
        ["success", "approval_id", "workflow_id", "approved"],
    ),
    "Approval": _obj(
        {"approval_id": STR, "status": {"type": "string", "enum": ["pending", "approved", "denied"]},
         "message": STR, "requested_at": NSTR, "expires_at": NSTR, "decided_at": NSTR, "decided_by": STR,
         "feedback": STR},
        ["approval_id", "status"],
    ),
    "SwarmMessageResult": _obj({"success": BOOL, "status": STR, "message_id": STR, "workflow_id": STR},
                               ["success", "status"]),
    "TimelineStep": _obj(
        {"kind": {"type": "string", "enum": ["llm", "tool", "approval", "pause"]}, "name": STR,
         "started_at": NSTR, "ended_at": NSTR, "duration_ms": NNUM, "status": STR, "tokens": INT,
         "approval_id": NSTR},
        ["kind", "name", "started_at", "status"],
    ),
    "TimelineAgent": _obj(
        {"agent_id": STR, "started_at": NSTR, "ended_at": NSTR, "duration_ms": NNUM, "status": STR,
         "steps": {"type": "array", "items": _ref("TimelineStep")}},
        ["agent_id", "steps"],
    ),
    "Timeline": _obj(
        {"task_id": STR, "workflow_id": STR, "status": STR, "started_at": NSTR, "ended_at": NSTR,
         "duration_ms": NNUM, "agents": {"type": "array", "items": _ref("TimelineAgent")}, "total": INT},
        ["task_id", "workflow_id", "agents"],
    ),
    "OpenAIError": _obj({"error": _obj({"message": STR, "type": STR, "code": STR}, ["message", "type"])},
                        ["error"]),
    "OpenAIModel": _obj({"id": STR, "object": STR, "created": INT, "owned_by": STR}, ["id", "object"]),
    "OpenAIModelList": _obj({"object": STR, "data": {"type": "array", "items": _ref("OpenAIModel")}},
                            ["object", "data"]),
    "OpenAIUsage": _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT}),
    "ChatCompletion": _obj(
        {"id": STR, "object": {"const": "chat.completion"}, "created": INT, "model": STR,
         "choices": {"type": "array", "items": _obj(
             {"index": INT, "message": _obj({"role": STR, "content": NSTR}), "finish_reason": STR})},
         "usage": _ref("OpenAIUsage")},
        ["id", "object", "created", "model", "choices"],
    ),
    "SessionSummary": _obj(
        {"session_id": STR, "user_id": STR, "title": NSTR, "context": {"type": "object"}, "task_count": INT,
         "tokens_used": INT, "total_cost_usd": {"type": "number"}, "successful_tasks": INT, "failed_tasks": INT,
         "success_rate": {"type": "number"}, "is_active": BOOL, "latest_task_query": NSTR,
         "latest_task_status": NSTR, "first_task_mode": NSTR, "created_at": STR, "updated_at": STR,
         "last_activity_at": NSTR},
        ["session_id", "user_id", "created_at"],
    ),
    "SessionList": _obj({"sessions": {"type": "array", "items": _ref("SessionSummary")}, "total_count": INT,
                         "next_cursor": STR}, ["sessions", "total_count"]),
    "SessionHistory": _obj({"session_id": STR, "total": INT, "tasks": {"type": "array", "items": _obj(
        {"task_id": STR, "workflow_id": STR, "query": STR, "status": STR, "mode": STR, "result": NSTR,
         "error_message": NSTR, "total_tokens": INT, "total_cost_usd": {"type": "number"},
         "duration_ms": {"type": ["integer", "null"]}, "started_at": STR, "completed_at": NSTR})}},
        ["session_id", "tasks"]),
    "SessionTurns": _obj({"session_id": STR, "count": INT, "turns": {"type": "array", "items": _obj(
        {"turn": INT, "task_id": STR, "user_query": STR, "final_output": NSTR, "timestamp": STR, "status": STR,
         "events": {"type": "array", "items": _ref("Event")}, "metadata": {"type": "object"}})}},
        ["session_id", "turns", "count"]),
    "SessionTitle": _obj({"title": {"type": "string", "minLength": 1, "maxLength": 60}}, ["title"]),
    "SessionChanged": _obj({"success": BOOL, "session_id": STR, "title": STR, "deleted": BOOL}, ["success"]),
}

LIMITED = " Rate limited per API key."


def _openai_errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json("OpenAIError", "Error") for s in statuses}


def paths() -> dict[str, Any]:
    return {
        "/api/v1/approvals/decision": {"post": {
            "operationId": "decideApproval",
            "summary": "Approve or deny a pending APPROVAL_REQUESTED (404 unknown approval or workflow, 409 already "
                       "decided or workflow finished)." + LIMITED,
            "requestBody": _body("ApprovalDecisionBody"),
            "responses": {"200": _json("ApprovalDecisionResult", "Decision sent"),
                          **_errors(400, 401, 404, 409, 429)}}},
        "/api/v1/swarm/{workflow_id}/message": {"parameters": [WORKFLOW_ID], "post": {
            "operationId": "sendSwarmMessage",
            "summary": "Deliver a message to a running swarm workflow (409 when it is not one)." + LIMITED,
            "requestBody": _body("SwarmMessageBody"),
            "responses": {"200": _json("SwarmMessageResult", "Delivered"), **_errors(400, 401, 404, 409, 429)}}},
        "/api/v1/tasks/{task_id}/timeline": {"parameters": [TASK_ID], "get": {
            "operationId": "getTaskTimeline", "summary": "The task's steps per agent with start, end and duration",
            "responses": {"200": _json("Timeline", "Timeline"), **_errors(400, 401, 404)}}},
        "/api/v1/tasks/{task_id}/stream": {"parameters": [TASK_ID], "get": {
            "operationId": "taskStreamLink",
            "summary": "307 to /api/v1/stream/sse?workflow_id=<id> (types and last_event_id carried over)",
            "parameters": [{"name": "types", "in": "query", "required": False, "schema": STR},
                           {"name": "last_event_id", "in": "query", "required": False, "schema": STR}],
            "responses": {"307": {"description": "Redirect to the task's SSE stream",
                                  "headers": {"Location": {"schema": STR}}}, **_errors(400, 401, 404)}}},
        "/api/v1/sessions": {"get": {
            "operationId": "listSessions",
            "summary": "The caller's sessions (live tasks, not deleted), most recent first." + LIMITED,
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                           {"name": "offset", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
                           {"name": "cursor", "in": "query", "required": False, "schema": STR}],
            "responses": {"200": _json("SessionList", "Sessions"), **_errors(400, 401, 429)}}},
        "/api/v1/sessions/{session_id}": {"parameters": [SESSION_ID], "get": {
            "operationId": "getSession", "summary": "One session with its totals",
            "responses": {"200": _json("SessionSummary", "The session"), **_errors(400, 401, 404)}},
            "patch": {"operationId": "renameSession", "summary": "Set the session's title." + LIMITED,
                      "requestBody": _body("SessionTitle"),
                      "responses": {"200": _json("SessionChanged", "Renamed"), **_errors(400, 401, 404, 429)}},
            "delete": {"operationId": "deleteSession",
                       "summary": "Delete the session (it answers 404 from then on; its tasks stay)." + LIMITED,
                       "responses": {"200": _json("SessionChanged", "Deleted"), **_errors(400, 401, 404, 429)}}},
        "/api/v1/sessions/{session_id}/history": {"parameters": [SESSION_ID], "get": {
            "operationId": "getSessionHistory", "summary": "The session's tasks, oldest first (at most 1,000)",
            "responses": {"200": _json("SessionHistory", "Tasks"), **_errors(400, 401, 404)}}},
        "/api/v1/sessions/{session_id}/events": {"parameters": [SESSION_ID], "get": {
            "operationId": "getSessionEvents", "summary": "Turns: each task of the session with its events (no "
                                                          "LLM_PARTIAL); count is the number of turns",
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
                           {"name": "offset", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}}],
            "responses": {"200": _json("SessionTurns", "Turns"), **_errors(400, 401, 404, 413)}}},
        "/v1/models": {"get": {
            "operationId": "listModels", "summary": "OpenAI-compatible: the models (each names a scenario)",
            "responses": {"200": _json("OpenAIModelList", "Models"), **_openai_errors(401)}}},
        "/v1/models/{model}": {"parameters": [{"name": "model", "in": "path", "required": True, "schema": STR}],
                               "get": {"operationId": "getModel", "summary": "OpenAI-compatible: one model",
                                       "responses": {"200": _json("OpenAIModel", "The model"),
                                                     **_openai_errors(401, 404)}}},
        "/v1/chat/completions": {"post": {
            "operationId": "createChatCompletion",
            "summary": "OpenAI-compatible chat completion: the last user message becomes a task. With stream: true, "
                       "text/event-stream of chat.completion.chunk objects, then data: [DONE]. Errors in OpenAI's "
                       "shape." + LIMITED,
            "parameters": [{"name": "X-Session-ID", "in": "header", "required": False, "schema": ID}],
            "requestBody": _body("ChatCompletionRequest"),
            "responses": {"200": {"description": "The completion, or its chunks when streamed",
                                  "content": {"application/json": {"schema": _ref("ChatCompletion")},
                                              "text/event-stream": {"schema": STR}}},
                          **_openai_errors(400, 401, 404, 429, 500)}}},
    }


def task_extras() -> dict[str, Any]:
    """Properties the interactive features add to the Task schema."""
    return {"approvals": {"type": "array", "items": _ref("Approval")}}
