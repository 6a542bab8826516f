"""One stream for a whole session (SSE and WebSocket): every workflow, history then live, resumable."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import orjson
import websockets

from tests.e2e.conftest import AuthStack
from tests.support.sse import Frame, parse
from tests.support.stack import Stack

FAST = {"speed": 20}


def _submit(base_url: str, session_id: str, query: str, headers: dict[str, str] | None = None) -> str:
    body = {"query": query, "session_id": session_id, "mode": "simple", "context": FAST}
    response = httpx.post(f"{base_url}/api/v1/tasks", json=body, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def _read(base_url: str, params: dict[str, str], until: Callable[[list[Frame]], bool],
          headers: dict[str, str] | None = None, on_open: Callable[[], None] | None = None,
          timeout: float = 60.0) -> tuple[list[Frame], list[str]]:
    """Read a session stream until ``until(frames)`` (it never ends by itself), then drop it."""
    frames: list[Frame] = []
    comments: list[str] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{base_url}/api/v1/stream/sse", params=params, headers=headers or {},
                      timeout=timeout) as response:
        assert response.status_code == 200
        if on_open is not None:
            on_open()
        for item in parse(response.iter_lines()):
            if isinstance(item, str):
                comments.append(item)
            else:
                frames.append(item)
            if until(frames) or time.monotonic() > deadline:
                break
    return frames, comments


def _ended(count: int) -> Callable[[list[Frame]], bool]:
    return lambda frames: sum(f.event == "STREAM_END" for f in frames) >= count


def _check(frames: list[Frame]) -> dict[str, list[int]]:
    """Per workflow: seq 1..N once, in order, ending with STREAM_END; every id a cursor."""
    seqs: dict[str, list[int]] = {}
    for frame in frames:
        data = frame.json
        seqs.setdefault(data["workflow_id"], []).append(data["seq"])
        assert frame.id and all("-" in part for part in frame.id.split("."))
    for workflow_id, got in seqs.items():
        assert got == list(range(got[0], got[0] + len(got))), (workflow_id, got)
    return seqs


def test_a_session_stream_replays_then_follows_new_tasks_and_resumes(stack: Stack) -> None:
    session_id = f"s-stream-{uuid.uuid4().hex[:8]}"
    first = _submit(stack.base_url, session_id, "One")
    second = _submit(stack.base_url, session_id, "Two")
    third: list[str] = []

    frames, comments = _read(stack.base_url, {"session_id": session_id}, _ended(3),
                             on_open=lambda: third.append(_submit(stack.base_url, session_id, "Three")))
    assert comments[0] == f": connected to session {session_id}"
    seqs = _check(frames)
    assert set(seqs) == {first, second, third[0]}
    assert all(got[0] == 1 for got in seqs.values())  # complete histories, and the live third task
    assert all(f.event != "done" for f in frames)  # a session stream stays open between tasks

    # Resume after the first workflow's end: exactly the rest, none twice.
    cut = next(i for i, f in enumerate(frames) if f.event == "STREAM_END")
    rest, _ = _read(stack.base_url, {"session_id": session_id}, lambda got: len(got) >= len(frames) - cut - 1,
                    headers={"Last-Event-ID": str(frames[cut].id)}, timeout=30)
    expected = [(f.json["workflow_id"], f.json["seq"]) for f in frames[cut + 1:]]
    got = [(f.json["workflow_id"], f.json["seq"]) for f in rest]
    assert sorted(got) == sorted(expected) and len(set(got)) == len(got)
    # Within a partition the order is the topic's: the same relative order per workflow.
    for workflow_id in {w for w, _ in expected}:
        assert [s for w, s in got if w == workflow_id] == [s for w, s in expected if w == workflow_id]

    filtered, _ = _read(stack.base_url, {"session_id": session_id, "types": "WORKFLOW_COMPLETED"},
                        lambda got: len(got) >= 3, timeout=30)
    assert [f.event for f in filtered] == ["WORKFLOW_COMPLETED"] * 3


def test_unknown_session_and_bad_cursor(stack: Stack) -> None:
    frames, comments = _read(stack.base_url, {"session_id": "s-nope"}, lambda got: bool(got), timeout=10)
    assert [f.event for f in frames] == ["ERROR_OCCURRED"] and frames[0].id is None
    assert frames[0].json == {"session_id": "s-nope", "type": "ERROR_OCCURRED", "message": "Session not found"}
    for params in ({"session_id": "bad id"}, {"session_id": "s-x", "last_event_id": "nope"}):
        assert httpx.get(f"{stack.base_url}/api/v1/stream/sse", params=params, timeout=10).status_code == 400


def test_session_websocket_frames_carry_the_cursor(stack: Stack) -> None:
    session_id = f"s-ws-{uuid.uuid4().hex[:8]}"
    workflow_id = _submit(stack.base_url, session_id, "Over a WebSocket")
    url = stack.base_url.replace("http://", "ws://") + f"/api/v1/stream/ws?session_id={session_id}"

    async def read() -> list[dict]:  # type: ignore[type-arg]
        got: list[dict] = []  # type: ignore[type-arg]
        async with websockets.connect(url, open_timeout=10) as ws:
            while not got or got[-1]["type"] != "STREAM_END":
                got.append(orjson.loads(await asyncio.wait_for(ws.recv(), 30)))
        return got

    events = asyncio.run(read())
    assert {e["workflow_id"] for e in events} == {workflow_id}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["cursor"] and e["stream_id"] for e in events)


def test_another_tenants_session_is_not_found(auth_stack: AuthStack) -> None:
    session_id = f"s-tenant-{uuid.uuid4().hex[:8]}"
    _submit(auth_stack.base_url, session_id, "Mine", headers={"X-API-Key": auth_stack.key_a})
    frames, _ = _read(auth_stack.base_url, {"session_id": session_id, "api_key": auth_stack.key_b},
                      lambda got: bool(got), timeout=10)
    assert frames[0].json["message"] == "Session not found"
    mine, _ = _read(auth_stack.base_url, {"session_id": session_id, "api_key": auth_stack.key_a}, _ended(1))
    assert mine[-1].event == "STREAM_END"
    assert httpx.get(f"{auth_stack.base_url}/api/v1/stream/sse", params={"session_id": session_id},
                     timeout=10).status_code == 401
