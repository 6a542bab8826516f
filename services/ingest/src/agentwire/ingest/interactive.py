"""Routes that drive a running stream: approval decisions, swarm messages, the timeline, the stream link.

Another tenant's workflow answers exactly as an unknown one (404 with the same message).
Decisions and messages are rate limited like cancel and pause; the timeline and the
redirect are reads and are not.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from agentwire.ingest.interactions import Conflict, NotFound
from agentwire.ingest.keys import INTERACTIONS, TASKS
from agentwire.ingest.requests import ApprovalDecisionBody, SwarmMessageBody
from agentwire.ingest.timeline import timeline
from agentwire.ingest.web import json_response, limited, own_task, read_body
from agentwire.service.http import ApiError, valid_id

routes = web.RouteTableDef()

APPROVAL_NOT_FOUND = "Workflow or approval not found"
STREAM_PARAMS = ("types", "last_event_id")


@routes.post("/api/v1/approvals/decision")
async def decide_approval(request: web.Request) -> web.Response:
    principal, limits = limited(request)
    body: ApprovalDecisionBody = await read_body(request, ApprovalDecisionBody)
    workflow_id = valid_id(body.workflow_id, "workflow_id")
    approval_id = valid_id(body.approval_id, "approval_id")
    state = await request.app[TASKS].find(workflow_id, principal.tenant)
    if state is None:
        raise ApiError(404, APPROVAL_NOT_FOUND)
    try:
        await request.app[INTERACTIONS].decide(state, approval_id, approved=body.approved,
                                               feedback=body.feedback or "", decided_by=principal.key_name)
    except NotFound:
        raise ApiError(404, APPROVAL_NOT_FOUND) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    answer = {"success": True, "status": "sent", "message": "Decision recorded", "approval_id": approval_id,
              "workflow_id": workflow_id, "approved": body.approved}
    return json_response(answer, headers=limits)


@routes.post("/api/v1/swarm/{workflow_id}/message")
async def swarm_message(request: web.Request) -> web.Response:
    principal, limits = limited(request)
    principal, state = await own_task(request, principal, param="workflow_id", not_found="Workflow not found")
    body: SwarmMessageBody = await read_body(request, SwarmMessageBody)
    try:
        sent = await request.app[INTERACTIONS].message(state, body.message, sent_by=principal.key_name)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    answer = {"success": True, "status": "delivered", "message_id": sent.message_id, "workflow_id": state.workflow_id}
    return json_response(answer, headers=limits)


@routes.get("/api/v1/tasks/{task_id}/timeline")
async def task_timeline(request: web.Request) -> web.Response:
    _, state = await own_task(request)
    events = await request.app[TASKS].history(state)
    return json_response(timeline(state, events))


@routes.get("/api/v1/tasks/{task_id}/stream")
async def task_stream(request: web.Request) -> web.Response:
    """307 to the task's SSE URL (as Shannon does), keeping the stream's own query parameters."""
    _, state = await own_task(request)
    query = {"workflow_id": state.workflow_id}
    query.update({k: request.query[k] for k in STREAM_PARAMS if k in request.query})
    raise web.HTTPTemporaryRedirect(f"/api/v1/stream/sse?{urlencode(query)}")
