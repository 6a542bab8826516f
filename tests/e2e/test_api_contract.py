"""CONTRACT.md's task, SSE and WebSocket rules over real HTTP against the running stack."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pytest
import websockets
from openapi_spec_validator import validate

from agentwire.gateway.main import create_app
from agentwire.service.settings import Settings
from tests.support.sse import Frame, parse, read_stream
from tests.support.stack import Stack
from tests.support.wait import eventually

FAST = {"speed": 20}
TERMINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED", "TASK_STATUS_TIMEOUT"}


def _submit(stack: Stack, **context: object) -> str:
    body = {"query": "Research AI trends", "context": {**FAST, **context}}
    response = httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def _status(stack: Stack, workflow_id: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


_await = eventually


def _ws_url(stack: Stack, query: str) -> str:
    return stack.base_url.replace("http://", "ws://") + f"/api/v1/stream/ws?{query}"


async def _ws_read(url: str, headers: dict[str, str] | None = None) -> tuple[list[dict], int | None]:  # type: ignore[type-arg]
    frames: list[dict] = []  # type: ignore[type-arg]
    async with websockets.connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(message, str)  # text frames
                frames.append(orjson.loads(message))
        except websockets.ConnectionClosedOK:
            pass
        return frames, ws.close_code


# --- OpenAPI and ops -------------------------------------------------------------------------------------------


def test_openapi_validates_and_lists_every_route(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    app = create_app(Settings(environment="test", skip_auth=True))
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        path = route.resource.canonical
        if path == "/" or path.startswith("/ui"):
            continue  # the web dashboard's HTML and static files are not part of the API
        assert path in document["paths"], path
        assert route.method.lower() in document["paths"][path], (route.method, path)


def test_health_readiness_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/health", timeout=10).json()["status"] == "healthy"
    assert httpx.get(f"{stack.base_url}/readiness", timeout=10).json() == {"status": "ready"}
    metrics = httpx.get(f"{stack.base_url}/metrics", timeout=10)
    assert metrics.status_code == 200 and "# TYPE" in metrics.text


# --- SSE resume, filters, unknown workflows --------------------------------------------------------------------


def _read_first(stack: Stack, workflow_id: str, count: int) -> list[Frame]:
    """Read ``count`` frames of a live stream, then drop the connection."""
    frames: list[Frame] = []
    with httpx.stream("GET", f"{stack.base_url}/api/v1/stream/sse", params={"workflow_id": workflow_id},
                      timeout=30) as response:
        for item in parse(response.iter_lines()):
            if isinstance(item, Frame):
                frames.append(item)
                if len(frames) == count:
                    break
    return frames


def test_resume_after_a_drop_gets_exactly_the_rest(stack: Stack) -> None:
    workflow_id = _submit(stack, speed=4)
    k = 6
    first = _read_first(stack, workflow_id, k)
    last = first[-1]
    seq_k = last.json["seq"]
    resumes = [
        ({"workflow_id": workflow_id}, {"Last-Event-ID": last.id}),
        ({"workflow_id": workflow_id}, {"Last-Event-ID": str(seq_k)}),
        ({"workflow_id": workflow_id, "last_event_id": last.id}, {}),
        ({"workflow_id": workflow_id, "last_event_id": str(seq_k)}, {}),
        # The header wins over the query parameter.
        ({"workflow_id": workflow_id, "last_event_id": "0"}, {"Last-Event-ID": last.id}),
    ]
    resumed = [read_stream(stack.base_url, params, headers)[0] for params, headers in resumes]
    full, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    assert [f.id for f in full[:k]] == [f.id for f in first]
    expected = [(f.id, f.event, f.data) for f in full[k:]]
    assert expected[-1][1] == "done"
    for frames in resumed:
        assert [(f.id, f.event, f.data) for f in frames] == expected
    from_start, _ = read_stream(stack.base_url, {"workflow_id": workflow_id, "last_event_id": "0"})
    assert [f.id for f in from_start] == [f.id for f in full]
    after_end, _ = read_stream(stack.base_url, {"workflow_id": workflow_id}, {"Last-Event-ID": full[-1].id})
    assert after_end == []


def test_types_filter_with_sse_aliases(stack: Stack) -> None:
    workflow_id = _submit(stack)
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id,
                                             "types": "AGENT_STARTED,thread.message.completed,done"})
    names = {f.event for f in frames}
    assert names == {"AGENT_STARTED", "thread.message.completed", "done"}
    assert frames[-1].event == "done"
    # STREAM_END filtered out: the stream still closes cleanly at the end.
    only, _ = read_stream(stack.base_url, {"workflow_id": workflow_id, "types": "WORKFLOW_COMPLETED"})
    assert [f.event for f in only] == ["WORKFLOW_COMPLETED"]
    nothing, _ = read_stream(stack.base_url, {"workflow_id": workflow_id, "types": "NO_SUCH_TYPE"})
    assert nothing == []


def test_unknown_workflow_sse_and_ws(stack: Stack) -> None:
    workflow_id = f"task-unknown-{uuid.uuid4().hex}"
    started = time.monotonic()
    frames, comments = read_stream(stack.base_url, {"workflow_id": workflow_id}, timeout=10)
    assert time.monotonic() - started < 3.0
    assert comments[0] == f": connected to workflow {workflow_id}"
    assert len(frames) == 1 and frames[0].event == "ERROR_OCCURRED" and frames[0].id is None
    assert frames[0].json == {"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": "Workflow not found"}

    started = time.monotonic()
    ws_frames, code = asyncio.run(_ws_read(_ws_url(stack, f"workflow_id={workflow_id}")))
    assert time.monotonic() - started < 3.0
    assert ws_frames == [{"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": "Workflow not found"}]
    assert code == 1000


def test_ws_plain_json_frames_close_1000_and_resume(stack: Stack) -> None:
    workflow_id = _submit(stack)
    frames, code = asyncio.run(_ws_read(_ws_url(stack, f"workflow_id={workflow_id}")))
    assert code == 1000
    assert frames[0]["type"] == "WORKFLOW_STARTED" and frames[-1]["type"] == "STREAM_END"
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert "LLM_PARTIAL" in {f["type"] for f in frames}  # no renaming on WS
    for frame in frames:
        assert {"workflow_id", "type", "timestamp", "seq", "stream_id"} <= frame.keys()
    k = 4
    by_seq, _ = asyncio.run(_ws_read(_ws_url(stack, f"workflow_id={workflow_id}&last_event_id={k}")))
    assert by_seq == frames[k:]
    by_id, _ = asyncio.run(_ws_read(_ws_url(stack, f"workflow_id={workflow_id}"),
                                    {"Last-Event-ID": frames[k - 1]["stream_id"]}))
    assert by_id == frames[k:]
    typed, _ = asyncio.run(_ws_read(_ws_url(stack, f"workflow_id={workflow_id}&types=AGENT_COMPLETED")))
    assert [f["type"] for f in typed] == ["AGENT_COMPLETED"] * 3


# --- task endpoints --------------------------------------------------------------------------------------------


def test_events_history_hides_prompts_and_partials_and_pages(stack: Stack) -> None:
    workflow_id = _submit(stack)
    read_stream(stack.base_url, {"workflow_id": workflow_id})
    url = f"{stack.base_url}/api/v1/tasks/{workflow_id}/events"
    everything = httpx.get(url, params={"limit": 200}, timeout=10).json()
    events = everything["events"]
    assert everything["count"] == len(events) > 10
    types = {e["type"] for e in events}
    assert "LLM_PARTIAL" not in types and "LLM_PROMPT" not in types and "STREAM_END" in types
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    page = httpx.get(url, params={"limit": 5, "offset": 3}, timeout=10).json()
    assert page["count"] == 5 and page["events"] == events[3:8]
    assert httpx.get(url, timeout=10).json()["count"] == min(50, len(events))
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}):
        assert httpx.get(url, params=bad, timeout=10).status_code == 400, bad


def test_list_filters_paging_and_validation(stack: Stack) -> None:
    session = f"session-{uuid.uuid4().hex}"
    ids = []
    for _ in range(3):
        body = {"query": "List me", "session_id": session, "context": FAST}
        ids.append(httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10).json()["task_id"])
    url = f"{stack.base_url}/api/v1/tasks"
    listed = httpx.get(url, params={"session_id": session}, timeout=10).json()
    assert listed["total_count"] == 3
    assert [t["task_id"] for t in listed["tasks"]] == list(reversed(ids))  # newest first
    assert {"task_id", "query", "status", "mode", "created_at"} <= listed["tasks"][0].keys()
    page = httpx.get(url, params={"session_id": session, "limit": 1, "offset": 1}, timeout=10).json()
    assert [t["task_id"] for t in page["tasks"]] == [ids[1]] and page["total_count"] == 3
    for workflow_id in ids:
        _await(lambda w=workflow_id: _status(stack, w)["status"] in TERMINAL, what="terminal")
    done = httpx.get(url, params={"session_id": session, "status": "COMPLETED"}, timeout=10).json()
    assert done["total_count"] == 3
    assert all("completed_at" in t for t in done["tasks"])
    usage = done["tasks"][0]["total_token_usage"]  # an object, as the SDK reads it
    assert usage["total_tokens"] > 0 and {"prompt_tokens", "completion_tokens", "cost_usd"} <= usage.keys()
    none = httpx.get(url, params={"session_id": session, "status": "TASK_STATUS_RUNNING"}, timeout=10).json()
    assert none["total_count"] == 0
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"status": "BOGUS"}):
        response = httpx.get(url, params=bad, timeout=10)
        assert response.status_code == 400 and "error" in response.json(), bad


def test_idempotency_key(stack: Stack) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    body = {"query": "Only once", "context": FAST}
    url = f"{stack.base_url}/api/v1/tasks"
    first = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=10)
    second = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "X-Idempotency-Cached" not in first.headers
    assert second.headers["X-Idempotency-Cached"] == "true"
    assert second.headers["X-Workflow-ID"] == first.headers["X-Workflow-ID"]
    different = httpx.post(url, json={**body, "query": "Another"}, headers={"Idempotency-Key": key}, timeout=10)
    assert different.status_code == 422 and "error" in different.json()
    workflow_id = first.json()["workflow_id"]
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    assert [f.event for f in frames].count("WORKFLOW_STARTED") == 1
    events = httpx.get(f"{url}/{workflow_id}/events", params={"limit": 200}, timeout=10).json()["events"]
    assert [e["type"] for e in events].count("WORKFLOW_STARTED") == 1
    assert [e["type"] for e in events].count("STREAM_END") == 1


def test_submit_and_stream(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/api/v1/tasks/stream", json={"query": "q", "context": FAST}, timeout=10)
    assert response.status_code == 201
    body = response.json()
    assert body["workflow_id"] == body["task_id"] == response.headers["X-Workflow-ID"]
    assert body["stream_url"] == f"/api/v1/stream/sse?workflow_id={body['workflow_id']}"
    assert response.headers["Link"] == f"<{body['stream_url']}>; rel=stream"
    with httpx.stream("GET", stack.base_url + body["stream_url"], timeout=30) as stream:
        assert stream.headers["Cache-Control"] == "no-cache" and stream.headers["X-Accel-Buffering"] == "no"
        frames = [f for f in parse(stream.iter_lines()) if isinstance(f, Frame)]
    assert frames[-1].event == "done"


def test_pause_resume_cancel_and_control_state(stack: Stack) -> None:
    # Slow enough (about 9 s of play) to outlive the round trips below on a loaded machine: at speed 1 the
    # task sometimes finished before the pause (or the cancel) reached a checkpoint.
    workflow_id = _submit(stack, speed=0.25)
    url = f"{stack.base_url}/api/v1/tasks/{workflow_id}"

    def control() -> dict:  # type: ignore[type-arg]
        return httpx.get(f"{url}/control-state", timeout=10).json()  # type: ignore[no-any-return]

    state = control()
    assert set(state) == {"is_paused", "is_cancelled", "paused_at", "pause_reason", "paused_by", "cancel_reason",
                          "cancelled_by"}
    assert state["is_paused"] is False and state["paused_at"] == ""
    assert httpx.post(f"{url}/resume", timeout=10).status_code == 409  # not paused
    paused = httpx.post(f"{url}/pause", json={"reason": "lunch"}, timeout=10)
    assert paused.status_code == 202
    assert paused.json() == {"success": True, "message": "Pause requested", "task_id": workflow_id}
    # Paused at the runner's next checkpoint (WORKFLOW_PAUSED), not merely requested.
    _await(lambda: _status(stack, workflow_id)["status"] == "TASK_STATUS_PAUSED",
           what=lambda: f"paused: {_status(stack, workflow_id)['status']}, {control()}")
    assert control()["is_paused"] is True and control()["paused_at"].endswith("Z")
    assert httpx.post(f"{url}/pause", timeout=10).status_code == 409  # already paused
    assert httpx.post(f"{url}/resume", timeout=10).status_code == 202
    _await(lambda: not control()["is_paused"] and _status(stack, workflow_id)["status"] != "TASK_STATUS_PAUSED",
           what=lambda: f"resumed: {_status(stack, workflow_id)['status']}, {control()}")
    cancelled = httpx.post(f"{url}/cancel", json={"reason": "enough"}, timeout=10)
    assert cancelled.status_code == 202 and cancelled.json()["success"] is True
    final = _await(lambda: (s := _status(stack, workflow_id))["status"] in TERMINAL and s,
                   what=lambda: f"terminal: {_status(stack, workflow_id)}, {control()}")
    assert final["status"] == "TASK_STATUS_CANCELLED"
    assert control()["is_cancelled"] is True
    again = httpx.post(f"{url}/cancel", timeout=10)
    assert again.status_code == 202 and again.json()["success"] is False
    assert httpx.post(f"{url}/pause", timeout=10).status_code == 409
    assert httpx.post(f"{url}/resume", timeout=10).status_code == 409
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    names = [f.event for f in frames]
    assert "workflow.paused" in names and "workflow.resumed" in names
    assert names[-2:] == ["workflow.cancelled", "done"]


BAD_REQUESTS: list[tuple[str, str, object, dict[str, str]]] = [
    ("POST", "/api/v1/tasks", b"not json", {}),
    ("POST", "/api/v1/tasks", b"[1, 2]", {}),
    ("POST", "/api/v1/tasks", b"", {}),
    ("POST", "/api/v1/tasks", {"query": ""}, {}),
    ("POST", "/api/v1/tasks", {"query": 5}, {}),
    ("POST", "/api/v1/tasks", {"query": "x" * 10_001}, {}),
    ("POST", "/api/v1/tasks", {"query": "q", "context": [1]}, {}),
    ("POST", "/api/v1/tasks", {"query": "q", "mode": "turbo"}, {}),
    ("POST", "/api/v1/tasks", {"query": "q", "model_tier": "huge"}, {}),
    ("POST", "/api/v1/tasks", {"query": "q"}, {"Idempotency-Key": "k" * 300}),
    ("POST", "/api/v1/tasks", b'{"query": "' + b"x" * 2_000_000 + b'"}', {}),
    ("POST", "/api/v1/tasks/stream", {"mode": "simple"}, {}),
    ("GET", "/api/v1/tasks/" + "x" * 200, None, {}),
    ("GET", "/api/v1/tasks/bad%20id", None, {}),
    ("GET", "/api/v1/tasks/bad%20id/events", None, {}),
    ("GET", "/api/v1/tasks/bad%20id/control-state", None, {}),
    ("POST", "/api/v1/tasks/bad%20id/cancel", None, {}),
    ("POST", "/api/v1/tasks/bad%20id/pause", None, {}),
    ("POST", "/api/v1/tasks/bad%20id/resume", None, {}),
    ("POST", "/api/v1/tasks/task-nope/cancel", b"{", {}),
    ("GET", "/api/v1/tasks/task-nope", None, {}),
    ("GET", "/api/v1/tasks?limit=-5", None, {}),
    ("GET", "/api/v1/stream/sse", None, {}),
    ("GET", "/api/v1/stream/sse?workflow_id=bad%20id", None, {}),
    ("GET", "/api/v1/stream/sse?workflow_id=task-x&last_event_id=abc", None, {}),
    ("GET", "/api/v1/stream/sse?workflow_id=task-x", None, {"Last-Event-ID": "1-2-3"}),
    ("GET", "/api/v1/stream/ws", None, {}),
    ("GET", "/api/v1/stream/ws?workflow_id=task-x&last_event_id=-1", None, {}),
    ("POST", "/api/v1/stream/token", b"{}", {}),
    ("PUT", "/api/v1/tasks", {"query": "q"}, {}),
    ("DELETE", "/api/v1/tasks/task-x", None, {}),
    ("GET", "/api/v1/nothing-here", None, {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), BAD_REQUESTS)
def test_malformed_input_is_4xx_json(stack: Stack, method: str, path: str, body: object,
                                     headers: dict[str, str]) -> None:
    kwargs: dict[str, object] = {"headers": headers, "timeout": 10}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = httpx.request(method, stack.base_url + path, **kwargs)  # type: ignore[arg-type]
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "error" in response.json()
    assert "X-Trace-ID" in response.headers
