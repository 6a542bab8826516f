"""The interactions that drive a stream, through the unmodified Shannon SDK and raw HTTP:
human approvals, swarm messages, the task timeline and the task stream link."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from shannon import ShannonClient, errors

from tests.integration.flows import check_stream, types_of
from tests.support.sse import read_stream
from tests.support.stack import Stack
from tests.support.wait import eventually

FAST = {"speed": 20}


@pytest.fixture
def client(stack: Stack) -> ShannonClient:
    sdk = ShannonClient(base_url=stack.base_url, default_timeout=30)
    yield sdk  # type: ignore[misc]
    sdk.close()


def _submit(client: ShannonClient, mode: str = "simple", **context: Any) -> str:
    return client.submit_task(query="Research AI trends", mode=mode, context={**FAST, **context}).workflow_id


def _approval_request(client: ShannonClient, workflow_id: str) -> dict[str, Any]:
    """What an SDK user sees: the APPROVAL_REQUESTED event, its payload parsed from the message."""
    for event in client.stream(workflow_id, types=["APPROVAL_REQUESTED"]):
        if event.type == "APPROVAL_REQUESTED":
            assert event.payload is not None, event.message
            return event.payload
    raise AssertionError("no APPROVAL_REQUESTED")


def _decide(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/api/v1/approvals/decision", json=body, timeout=10)


def test_an_approved_plan_runs_to_completion(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client, require_approval=True)
    request = _approval_request(client, workflow_id)
    assert request["approval_id"].startswith("approval-") and request["what"] == "plan"
    assert request["expires_at"].endswith("Z") and request["timeout_s"] == 600
    # Nothing moves until someone decides. (The status comes from the query store, fed from the
    # task-state topic right behind the events: a client that has just seen the request may read
    # the state before it for a few milliseconds.)
    eventually(lambda: client.get_status(workflow_id).status.value == "RUNNING", 10, "status RUNNING")
    assert client.approve(request["approval_id"], workflow_id, approved=True, feedback="looks good") is True
    assert client.wait(workflow_id, timeout=30).status.value == "COMPLETED"

    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    events = check_stream(frames)
    decision = next(e for e in events if e.get("type") == "APPROVAL_DECISION")
    assert decision["payload"] == {"approval_id": request["approval_id"], "approved": True,
                                   "feedback": "looks good", "decided_by": "anonymous"}
    types = types_of(frames)
    assert types.index("APPROVAL_REQUESTED") < types.index("APPROVAL_DECISION") < types.index("AGENT_STARTED")
    approvals = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10).json()["approvals"]
    assert [(a["approval_id"], a["status"], a["feedback"]) for a in approvals] == [
        (request["approval_id"], "approved", "looks good")]

    # Decided, and the workflow finished: 409 (the SDK reports it as a ConnectionError).
    again = _decide(stack, {"approval_id": request["approval_id"], "workflow_id": workflow_id, "approved": False})
    assert again.status_code == 409 and "error" in again.json()
    with pytest.raises(errors.ConnectionError):
        client.approve(request["approval_id"], workflow_id, approved=False)


def test_a_denied_plan_fails_the_workflow_with_the_reason(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client, "standard", require_approval=True)
    request = _approval_request(client, workflow_id)
    first = _decide(stack, {"approval_id": request["approval_id"], "workflow_id": workflow_id, "approved": False,
                            "feedback": "too expensive"})
    assert first.status_code == 200, first.text
    assert first.json() == {"success": True, "status": "sent", "message": "Decision recorded",
                            "approval_id": request["approval_id"], "workflow_id": workflow_id, "approved": False}
    # A second decision right away (same pod): already decided.
    second = _decide(stack, {"approval_id": request["approval_id"], "workflow_id": workflow_id, "approved": True})
    assert second.status_code == 409 and second.json() == {"error": "Approval already decided"}
    status = client.wait(workflow_id, timeout=30)
    assert status.status.value == "FAILED"
    assert status.error_message and "too expensive" in status.error_message
    frames, _ = read_stream(stack.base_url, {"workflow_id": workflow_id})
    check_stream(frames)
    assert types_of(frames)[-3:] == ["APPROVAL_DECISION", "WORKFLOW_FAILED", "STREAM_END"]
    assert frames[-2].json["payload"]["reason"] == "approval_denied"


def test_pause_and_cancel_while_waiting_for_approval(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client, require_approval=True)
    request = _approval_request(client, workflow_id)
    assert client.pause_task(workflow_id)
    eventually(lambda: client.get_status(workflow_id).status.value == "PAUSED", 10, "paused")
    # Still pending while paused: the decision is taken, and applied after the resume.
    assert client.approve(request["approval_id"], workflow_id, approved=True)
    assert client.resume_task(workflow_id)
    assert client.wait(workflow_id, timeout=30).status.value == "COMPLETED"
    types = types_of(read_stream(stack.base_url, {"workflow_id": workflow_id})[0])
    assert types.index("WORKFLOW_PAUSED") < types.index("WORKFLOW_RESUMED") < types.index("APPROVAL_DECISION")

    cancelled = _submit(client, require_approval=True)
    _approval_request(client, cancelled)
    assert client.cancel(cancelled, reason="no longer needed")
    assert client.wait(cancelled, timeout=30).status.value == "CANCELLED"


def test_decision_validation_and_unknown_ids(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client, require_approval=True)
    request = _approval_request(client, workflow_id)
    approval_id = request["approval_id"]
    for body in ({}, {"approval_id": approval_id, "workflow_id": workflow_id},  # approved is required
                 {"approval_id": approval_id, "workflow_id": workflow_id, "approved": "yes"},
                 {"approval_id": "bad id!", "workflow_id": workflow_id, "approved": True},
                 {"approval_id": approval_id, "workflow_id": "", "approved": True}):
        assert _decide(stack, body).status_code == 400, body
    missing = {"error": "Workflow or approval not found"}
    unknown_approval = _decide(stack, {"approval_id": "approval-0", "workflow_id": workflow_id, "approved": True})
    assert (unknown_approval.status_code, unknown_approval.json()) == (404, missing)
    unknown_workflow = _decide(stack, {"approval_id": approval_id, "workflow_id": "task-nope", "approved": True})
    assert (unknown_workflow.status_code, unknown_workflow.json()) == (404, missing)
    with pytest.raises(errors.ShannonError):
        client.approve("approval-0", workflow_id)
    assert client.approve(approval_id, workflow_id)
    assert client.wait(workflow_id, timeout=30).status.value == "COMPLETED"


def test_auto_approve_stays_available_for_demos(client: ShannonClient) -> None:
    workflow_id = _submit(client, require_approval=True, auto_approve=True, approval_wait_s=0.5)
    assert client.wait(workflow_id, timeout=30).status.value == "COMPLETED"


def test_swarm_messages_reach_the_running_swarm(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client, "standard", force_swarm=True, speed=2)
    for _event in client.stream(workflow_id, types=["TASKLIST_UPDATED"]):
        break  # the swarm is running
    result = client.send_swarm_message(workflow_id, "Focus on European sources")
    assert result.success and result.status == "delivered"
    seen: list[Any] = []
    for event in client.stream(workflow_id):
        seen.append(event)
        if event.type == "done":
            break
    received = [e for e in seen if e.type == "MESSAGE_RECEIVED"]
    assert [e.message for e in received] == ["Focus on European sources"] and received[0].agent_id == "lead"
    types = [e.type for e in seen]
    at = types.index("MESSAGE_RECEIVED")
    assert types[at + 1: at + 3] == ["LEAD_DECISION", "MESSAGE_SENT"]
    assert "WORKFLOW_COMPLETED" in types

    # Finished, or not a swarm: 409; unknown: 404.
    assert client.wait(workflow_id, timeout=10).status.value == "COMPLETED"
    with pytest.raises(errors.ConnectionError, match="409"):
        client.send_swarm_message(workflow_id, "too late")
    plain = _submit(client, require_approval=True)
    answer = httpx.post(f"{stack.base_url}/api/v1/swarm/{plain}/message", json={"message": "hi"}, timeout=10)
    assert answer.status_code == 409 and answer.json() == {"error": "Workflow is not a swarm"}
    missing = httpx.post(f"{stack.base_url}/api/v1/swarm/task-nope/message", json={"message": "hi"}, timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "Workflow not found"}
    for body in ({}, {"message": ""}, {"message": 5}):
        response = httpx.post(f"{stack.base_url}/api/v1/swarm/{workflow_id}/message", json=body, timeout=10)
        assert response.status_code == 400, body
    client.cancel(plain)


def test_timeline_per_agent(client: ShannonClient) -> None:
    workflow_id = _submit(client, "standard", tool_error=True)
    client.wait(workflow_id, timeout=30)
    timeline = client.get_task_timeline(workflow_id)
    assert timeline["workflow_id"] == workflow_id and timeline["status"] == "TASK_STATUS_COMPLETED"
    assert timeline["duration_ms"] > 0 and timeline["total"] > 20
    agents = {a["agent_id"]: a for a in timeline["agents"]}
    assert {"orchestrator", "planner", "research-agent", "analysis-agent", "writer-agent"} <= set(agents)
    research = agents["research-agent"]
    assert research["status"] == "completed" and research["duration_ms"] > 0
    assert research["started_at"] <= research["ended_at"]
    kinds = [(s["kind"], s["status"]) for s in research["steps"]]
    assert kinds == [("llm", "ok"), ("tool", "error"), ("tool", "ok")]  # the LLM call spans its tool calls
    llm = research["steps"][0]
    assert llm["tokens"] > 0 and llm["duration_ms"] >= 0
    starts = [a["started_at"] for a in timeline["agents"]]
    assert starts == sorted(starts)
    with pytest.raises(errors.TaskNotFoundError):
        client.get_task_timeline("task-nope")


def test_task_stream_link_redirects_to_the_sse_url(stack: Stack, client: ShannonClient) -> None:
    workflow_id = _submit(client)
    response = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}/stream",
                         params={"types": "WORKFLOW_COMPLETED", "last_event_id": "0", "other": "x"}, timeout=10)
    assert response.status_code == 307
    assert response.headers["Location"] == (
        f"/api/v1/stream/sse?workflow_id={workflow_id}&types=WORKFLOW_COMPLETED&last_event_id=0")
    followed = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}/stream", follow_redirects=True, timeout=30)
    assert followed.status_code == 200 and followed.text.rstrip().endswith("data: [DONE]")
    assert httpx.get(f"{stack.base_url}/api/v1/tasks/task-nope/stream", timeout=10).status_code == 404
