"""The foundation flow end to end: HTTP submit → runner → processor → edge → SSE."""

from __future__ import annotations

import itertools

import httpx

from tests.support.sse import read_stream
from tests.support.stack import Stack

SEED_ORDER = [
    "WORKFLOW_STARTED", "DATA_PROCESSING", "PROGRESS", "AGENT_STARTED", "LLM_PROMPT", "TOOL_INVOKED",
    "TOOL_OBSERVATION", "thread.message.delta", "thread.message.completed", "AGENT_COMPLETED",
]


def submit(stack: Stack, query: str = "Research AI trends", **context: object) -> str:
    body = {"query": query, "context": {"speed": 20, **context}}
    response = httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "STATUS_CODE_OK"
    assert data["task_id"] == data["workflow_id"] == response.headers["X-Workflow-ID"]
    assert response.headers["X-Session-ID"]
    assert "X-Trace-ID" in response.headers
    return str(data["workflow_id"])


def test_submitted_task_is_never_404(stack: Stack) -> None:
    workflow_id = submit(stack)
    status = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10)
    assert status.status_code == 200
    assert status.json()["status"] in {"TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING", "TASK_STATUS_COMPLETED"}


def test_raw_sse_stream_follows_the_seed(stack: Stack) -> None:
    workflow_id = submit(stack)
    frames, comments = read_stream(stack.base_url, {"workflow_id": workflow_id})

    assert comments[0] == f": connected to workflow {workflow_id}"
    names = [f.event for f in frames]
    collapsed = [name for name, _ in itertools.groupby(names)]  # LLM text comes in several deltas
    assert collapsed[: len(SEED_ORDER)] == SEED_ORDER
    assert names[-3:] == ["PROGRESS", "WORKFLOW_COMPLETED", "done"]
    assert names.count("AGENT_STARTED") == names.count("AGENT_COMPLETED") == 3
    assert frames[-1].data == ["[DONE]"]

    events = [f.json for f in frames[:-1]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for frame, event in zip(frames, events, strict=False):
        assert frame.id == event["stream_id"]
        partition, offset = frame.id.split("-")
        assert partition.isdigit() and offset.isdigit()
        assert event["workflow_id"] == workflow_id
    offsets = [int(f.id.split("-")[1]) for f in frames]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert frames[2].json["message"] == "Created a plan with 3 steps"
    progress = [e["payload"]["percent"] for e in events if e.get("type") == "PROGRESS"][1:]
    assert progress == [33.3, 66.7, 100.0]

    status = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10).json()
    assert status["status"] == "TASK_STATUS_COMPLETED"
    assert status["result"]
    assert status["progress"] == 1.0


def test_replay_of_a_finished_workflow_is_identical(stack: Stack) -> None:
    workflow_id = submit(stack)
    first, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    second, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    assert [(f.id, f.event, f.data) for f in first] == [(f.id, f.event, f.data) for f in second]


def test_unknown_workflow_gets_an_error_frame_and_a_clean_close(stack: Stack) -> None:
    frames, _ = read_stream(stack.base_url, {"workflow_id": "task-does-not-exist"}, timeout=10)
    assert len(frames) == 1
    assert frames[0].event == "ERROR_OCCURRED" and frames[0].id is None
    assert frames[0].json == {"workflow_id": "task-does-not-exist", "type": "ERROR_OCCURRED",
                              "message": "Workflow not found"}


def test_bad_requests_are_400_json(stack: Stack) -> None:
    base = stack.base_url
    assert httpx.get(f"{base}/api/v1/stream/sse", timeout=10).status_code == 400
    bad = httpx.get(f"{base}/api/v1/stream/sse", params={"workflow_id": "bad id!"}, timeout=10)
    assert bad.status_code == 400 and "error" in bad.json()
    resume = httpx.get(f"{base}/api/v1/stream/sse", params={"workflow_id": "w", "last_event_id": "x-y"}, timeout=10)
    assert resume.status_code == 400
    for body in [b"{", b"[]", b'{"query": ""}', b'{"query": 5}', b'{"query": "q", "mode": "nope"}']:
        response = httpx.post(f"{base}/api/v1/tasks", content=body, timeout=10,
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        assert "error" in response.json()
    assert httpx.get(f"{base}/api/v1/tasks/task-unknown", timeout=10).status_code == 404
