"""Auth, tenancy, stream tokens, rate limits and CORS over real HTTP (gateway with auth)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from tests.e2e.conftest import AuthStack
from tests.support.sse import read_stream
from tests.support.wait import eventually

FAST = {"speed": 20}


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _submit(auth: AuthStack, key: str, **context: object) -> str:
    body = {"query": "Research AI trends", "context": {**FAST, **context}}
    response = httpx.post(f"{auth.base_url}/api/v1/tasks", json=body, headers=_h(key), timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def _wait_terminal(auth: AuthStack, key: str, workflow_id: str, timeout: float = 30.0) -> dict:  # type: ignore[type-arg]
    def terminal() -> dict | None:  # type: ignore[type-arg]
        body = httpx.get(f"{auth.base_url}/api/v1/tasks/{workflow_id}", headers=_h(key), timeout=10).json()
        done = body["status"] in {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED"}
        return body if done else None

    return eventually(terminal, timeout, f"{workflow_id} terminal")


def test_missing_and_bad_credentials_are_401_json(auth_stack: AuthStack) -> None:
    url = auth_stack.base_url
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        for method, path in [("GET", "/api/v1/tasks"), ("POST", "/api/v1/tasks"), ("GET", "/api/v1/tasks/task-x"),
                             ("GET", "/api/v1/stream/sse?workflow_id=task-x"),
                             ("GET", "/api/v1/stream/ws?workflow_id=task-x"), ("POST", "/api/v1/stream/token"),
                             ("GET", "/api/v1/tasks/task-x/timeline"), ("GET", "/api/v1/tasks/task-x/stream"),
                             ("POST", "/api/v1/approvals/decision"), ("POST", "/api/v1/swarm/task-x/message"),
                             ("GET", "/api/v1/sessions"), ("GET", "/api/v1/sessions/s-x"),
                             ("PATCH", "/api/v1/sessions/s-x"), ("DELETE", "/api/v1/sessions/s-x"),
                             ("GET", "/api/v1/sessions/s-x/history"), ("GET", "/api/v1/sessions/s-x/events"),
                             ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]:
            response = httpx.request(method, url + path, headers=headers, json={"query": "q"}, timeout=10)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"].startswith("application/json")
            assert "error" in response.json()


def test_header_bearer_and_stream_query_credentials(auth_stack: AuthStack) -> None:
    url = auth_stack.base_url
    assert httpx.get(f"{url}/api/v1/tasks", headers=_h(auth_stack.key_a), timeout=10).status_code == 200
    bearer = {"Authorization": f"Bearer {auth_stack.key_a}"}
    assert httpx.get(f"{url}/api/v1/tasks", headers=bearer, timeout=10).status_code == 200
    # Query credentials only on the stream routes.
    assert httpx.get(f"{url}/api/v1/tasks?api_key={auth_stack.key_a}", timeout=10).status_code == 401
    assert httpx.get(f"{url}/api/v1/tasks?token={auth_stack.key_a}", timeout=10).status_code == 401
    workflow_id = _submit(auth_stack, auth_stack.key_a)
    frames, _ = read_stream(url, {"workflow_id": workflow_id, "api_key": auth_stack.key_a})
    assert frames[-1].event == "done"
    frames, _ = read_stream(url, {"workflow_id": workflow_id, "token": auth_stack.key_a})
    assert frames[-1].event == "done"


def test_ops_routes_need_no_credentials(auth_stack: AuthStack) -> None:
    for path in ("/health", "/readiness", "/metrics", "/openapi.json"):
        assert httpx.get(auth_stack.base_url + path, timeout=10).status_code == 200, path


def _not_found_sse(url: str, workflow_id: str, params: dict[str, str]) -> None:
    started = time.monotonic()
    frames, comments = read_stream(url, {"workflow_id": workflow_id, **params}, timeout=10)
    assert time.monotonic() - started < 4
    assert comments[0] == f": connected to workflow {workflow_id}"
    assert [f.event for f in frames] == ["ERROR_OCCURRED"]
    assert frames[0].id is None
    assert frames[0].json == {"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": "Workflow not found"}


async def _ws_frames(url: str, headers: dict[str, str] | None = None) -> tuple[list[str], int | None]:
    frames: list[str] = []
    async with websockets.connect(url, additional_headers=headers or {}, open_timeout=10) as ws:
        try:
            while True:
                frames.append(str(await asyncio.wait_for(ws.recv(), 30)))
        except websockets.ConnectionClosedOK:
            pass
        return frames, ws.close_code


def test_foreign_task_behaves_exactly_like_an_unknown_one(auth_stack: AuthStack) -> None:
    url = auth_stack.base_url
    mine = _submit(auth_stack, auth_stack.key_a, speed=2)
    missing = "task-does-not-exist"
    b = _h(auth_stack.key_b)

    def answers(workflow_id: str) -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        for method, path in [
            ("GET", ""), ("GET", "/events"), ("GET", "/control-state"),
            ("POST", "/cancel"), ("POST", "/pause"), ("POST", "/resume"),
        ]:
            response = httpx.request(method, f"{url}/api/v1/tasks/{workflow_id}{path}", headers=b, timeout=10)
            out.append((response.status_code, response.json()))
        token = httpx.post(f"{url}/api/v1/stream/token", json={"workflow_id": workflow_id}, headers=b, timeout=10)
        out.append((token.status_code, token.json()))
        for method, path in [("GET", "/timeline"), ("GET", "/stream")]:
            response = httpx.request(method, f"{url}/api/v1/tasks/{workflow_id}{path}", headers=b, timeout=10)
            out.append((response.status_code, response.json()))
        decision = {"approval_id": "approval-0", "workflow_id": workflow_id, "approved": True}
        for path, body in [("/api/v1/approvals/decision", decision),
                           (f"/api/v1/swarm/{workflow_id}/message", {"message": "hi"})]:
            response = httpx.post(url + path, json=body, headers=b, timeout=10)
            out.append((response.status_code, response.json()))
        return out

    foreign, unknown = answers(mine), answers(missing)
    assert foreign == unknown
    assert all(status == 404 for status, _ in foreign)
    assert foreign[0][1] == {"error": "Task not found"}

    listed = httpx.get(f"{url}/api/v1/tasks", params={"limit": 100}, headers=b, timeout=10).json()
    assert mine not in [t["task_id"] for t in listed["tasks"]]

    _not_found_sse(url, mine, {"api_key": auth_stack.key_b})
    ws_url = url.replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={mine}"
    frames, code = asyncio.run(_ws_frames(ws_url, b))
    assert code == 1000
    assert len(frames) == 1 and '"Workflow not found"' in frames[0] and "seq" not in frames[0]

    # The owner still sees it, and it was not cancelled or paused by B's attempts.
    status = httpx.get(f"{url}/api/v1/tasks/{mine}", headers=_h(auth_stack.key_a), timeout=10).json()
    assert status["workflow_id"] == mine
    control = httpx.get(f"{url}/api/v1/tasks/{mine}/control-state", headers=_h(auth_stack.key_a), timeout=10)
    assert control.json()["is_cancelled"] is False and control.json()["is_paused"] is False
    assert _wait_terminal(auth_stack, auth_stack.key_a, mine)["status"] == "TASK_STATUS_COMPLETED"


def test_stream_token_opens_one_workflow_only(auth_stack: AuthStack) -> None:
    url = auth_stack.base_url
    first = _submit(auth_stack, auth_stack.key_a)
    second = _submit(auth_stack, auth_stack.key_a)
    response = httpx.post(f"{url}/api/v1/stream/token", json={"workflow_id": first},
                          headers=_h(auth_stack.key_a), timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert response.json()["expires_at"].endswith("Z")

    frames, _ = read_stream(url, {"workflow_id": first, "token": token})
    assert frames[-1].event == "done"
    assert frames[0].json["workflow_id"] == first
    ws_url = url.replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={first}&token={token}"
    ws_frames, code = asyncio.run(_ws_frames(ws_url))
    assert code == 1000 and '"STREAM_END"' in ws_frames[-1]

    other = httpx.get(f"{url}/api/v1/stream/sse", params={"workflow_id": second, "token": token}, timeout=10)
    assert other.status_code == 401
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    bad = httpx.get(f"{url}/api/v1/stream/sse", params={"workflow_id": first, "token": tampered}, timeout=10)
    assert bad.status_code == 401
    # Not a credential for the task API.
    assert httpx.get(f"{url}/api/v1/tasks/{first}", headers={"X-API-Key": token}, timeout=10).status_code == 401
    # Bad bodies.
    for body in (b"", b"[]", b"{", b'{"workflow_id": 5}', b'{"workflow_id": "bad id!"}'):
        answer = httpx.post(f"{url}/api/v1/stream/token", content=body, headers=_h(auth_stack.key_a), timeout=10)
        assert answer.status_code == 400, (body, answer.text)


def test_rate_limit_per_key(auth_stack: AuthStack) -> None:
    url = auth_stack.base_url
    limited = _h(auth_stack.key_limited)
    remaining = []
    for _ in range(5):
        response = httpx.get(f"{url}/api/v1/tasks", headers=limited, timeout=10)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        assert int(response.headers["X-RateLimit-Reset"]) >= 0
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    refused = httpx.post(f"{url}/api/v1/tasks", json={"query": "q"}, headers=limited, timeout=10)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Rate limit exceeded"}
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    for path in ("/api/v1/tasks/stream", "/api/v1/tasks/task-x/cancel", "/api/v1/tasks/task-x/pause",
                 "/api/v1/tasks/task-x/resume", "/api/v1/approvals/decision", "/api/v1/swarm/task-x/message"):
        assert httpx.post(url + path, json={"query": "q"}, headers=limited, timeout=10).status_code == 429, path
    # Never on status, control-state, events, streams or health; other keys unaffected.
    assert httpx.get(f"{url}/api/v1/tasks/task-x", headers=limited, timeout=10).status_code == 404
    assert httpx.get(f"{url}/api/v1/tasks/task-x/events", headers=limited, timeout=10).status_code == 404
    assert httpx.get(f"{url}/api/v1/tasks/task-x/control-state", headers=limited, timeout=10).status_code == 404
    assert httpx.get(f"{url}/api/v1/tasks/task-x/timeline", headers=limited, timeout=10).status_code == 404
    assert httpx.get(f"{url}/health", headers=limited, timeout=10).status_code == 200
    frames, _ = read_stream(url, {"workflow_id": "task-x"}, headers=limited, timeout=10)
    assert frames[0].event == "ERROR_OCCURRED"
    assert httpx.get(f"{url}/api/v1/tasks", headers=_h(auth_stack.key_b), timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/tasks/task-x/cancel", "/api/v1/stream/sse",
                                  "/api/v1/stream/token", "/api/v1/tasks/task-x"])
def test_cors_preflight_without_auth(auth_stack: AuthStack, path: str) -> None:
    headers = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET" if path in ("/api/v1/stream/sse", "/api/v1/tasks/task-x") else "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key, last-event-id, traceparent",
    }
    response = httpx.options(auth_stack.base_url + path, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for name in ("x-api-key", "content-type", "idempotency-key", "last-event-id", "traceparent"):
        assert name in allowed
    foreign = httpx.options(auth_stack.base_url + path, headers={**headers, "Origin": "https://evil.example"},
                            timeout=10)
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_cors_headers_on_actual_responses(auth_stack: AuthStack) -> None:
    response = httpx.post(f"{auth_stack.base_url}/api/v1/tasks", json={"query": "q", "context": FAST},
                          headers={**_h(auth_stack.key_a), "Origin": "https://app.example"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = response.headers["Access-Control-Expose-Headers"]
    for name in ("X-Workflow-ID", "X-Session-ID", "X-Trace-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                 "X-RateLimit-Reset"):
        assert name.lower() in exposed.lower()
    with httpx.stream("GET", f"{auth_stack.base_url}/api/v1/stream/sse",
                      params={"workflow_id": response.json()["workflow_id"], "api_key": auth_stack.key_a},
                      headers={"Origin": "https://app.example"}, timeout=30) as stream:
        assert stream.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_keepalive_comment(auth_stack: AuthStack) -> None:
    # The runner stalls at "prepare" (context.stall_at), so the stream goes quiet; the processor times
    # the workflow out later.
    workflow_id = _submit(auth_stack, auth_stack.key_a, stall_at="prepare")
    comments: list[str] = []
    with httpx.stream("GET", f"{auth_stack.base_url}/api/v1/stream/sse",
                      params={"workflow_id": workflow_id}, headers=_h(auth_stack.key_a), timeout=30) as stream:
        for line in stream.iter_lines():
            if line == ": keepalive":
                comments.append(line)
                break
    assert comments == [": keepalive"]
