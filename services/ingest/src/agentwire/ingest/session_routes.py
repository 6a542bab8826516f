"""HTTP routes of the sessions API (the SDK's list/get/history/events/update_session_title/delete_session).

Tenant-scoped: another tenant's session, or a deleted one, answers exactly as an unknown one
(404 ``{"error": "Session not found"}``, which the SDK raises as SessionNotFoundError). Listing,
renaming and deleting are rate limited like the task list; reads of one session are not.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agentwire.auth import Principal
from agentwire.ingest.keys import SESSIONS
from agentwire.ingest.openapi import MAX_OFFSET
from agentwire.ingest.sessions import TooManyEvents, history_item
from agentwire.ingest.web import int_param, json_response, limited, principal_of, read_body
from agentwire.service.http import ApiError, valid_id
from agentwire.store import InvalidCursor, SessionSummary

routes = web.RouteTableDef()

NOT_FOUND = "Session not found"
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"  # something besides spaces, and no NUL (PostgreSQL text)


class SessionTitle(BaseModel):
    """Body of PATCH /api/v1/sessions/{session_id}."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=60, pattern=NOT_BLANK)


async def _own_session(request: web.Request, principal: Principal | None = None) -> tuple[Principal, SessionSummary]:
    principal = principal or principal_of(request)
    session_id = valid_id(request.match_info["session_id"], "session id")
    session = await request.app[SESSIONS].find(principal.tenant, session_id)
    if session is None:
        raise ApiError(404, NOT_FOUND)
    return principal, session


@routes.get("/api/v1/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    principal, limits = limited(request)
    limit = int_param(request.query.get("limit"), "limit", default=20, low=1, high=100)
    offset = int_param(request.query.get("offset"), "offset", default=0, low=0, high=MAX_OFFSET)
    try:
        rows, total, cursor = await request.app[SESSIONS].page(principal.tenant, limit=limit, offset=offset,
                                                               cursor=request.query.get("cursor") or None)
    except InvalidCursor as exc:
        raise ApiError(400, str(exc)) from None
    body: dict[str, Any] = {"sessions": rows, "total_count": total}
    if cursor is not None:
        body["next_cursor"] = cursor
    return json_response(body, headers=limits)


@routes.get("/api/v1/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    principal, session = await _own_session(request)
    return json_response(await request.app[SESSIONS].details(principal.tenant, session))


@routes.patch("/api/v1/sessions/{session_id}")
async def rename_session(request: web.Request) -> web.Response:
    principal, limits = limited(request)
    principal, session = await _own_session(request, principal)
    body: SessionTitle = await read_body(request, SessionTitle)
    title = body.title.strip()
    if not title:
        raise ApiError(400, "invalid title: must not be blank")
    await request.app[SESSIONS].rename(principal.tenant, session, title)
    return json_response({"success": True, "session_id": session.session_id, "title": title}, headers=limits)


@routes.delete("/api/v1/sessions/{session_id}")
async def delete_session(request: web.Request) -> web.Response:
    principal, limits = limited(request)
    principal, session = await _own_session(request, principal)
    await request.app[SESSIONS].delete(principal.tenant, session)
    return json_response({"success": True, "session_id": session.session_id, "deleted": True}, headers=limits)


@routes.get("/api/v1/sessions/{session_id}/history")
async def session_history(request: web.Request) -> web.Response:
    principal, session = await _own_session(request)
    states, total = await request.app[SESSIONS].tasks(principal.tenant, session.session_id)
    return json_response({"session_id": session.session_id, "tasks": [history_item(s) for s in states],
                          "total": total})


@routes.get("/api/v1/sessions/{session_id}/events")
async def session_events(request: web.Request) -> web.Response:
    principal, session = await _own_session(request)
    limit = int_param(request.query.get("limit"), "limit", default=10, low=1, high=100)
    offset = int_param(request.query.get("offset"), "offset", default=0, low=0, high=MAX_OFFSET)
    try:
        turns, total = await request.app[SESSIONS].turns(principal.tenant, session.session_id, limit=limit,
                                                         offset=offset)
    except TooManyEvents as exc:
        raise ApiError(413, str(exc)) from None
    return json_response({"session_id": session.session_id, "turns": turns, "count": total})
