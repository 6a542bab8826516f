"""Scenarios, control, budget, timeout and dead letters through the real stack and Kafka."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agentwire.schema import Topics
from tests.integration.flows import Reader, check_stream, status, submit, types_of, wait_status
from tests.support.sse import read_stream
from tests.support.stack import Stack

GRAMMAR_CASES = [
    ("simple", {}, set()),
    ("standard", {}, set()),
    ("complex", {}, {"DELEGATION", "ROLE_ASSIGNED", "DEPENDENCY_SATISFIED"}),
    ("supervisor", {"features": ["dynamic_team_v1", "p2p_v1"]},
     {"TEAM_RECRUITED", "TEAM_RETIRED", "MESSAGE_SENT", "MESSAGE_RECEIVED", "WORKSPACE_UPDATED"}),
    ("standard", {"force_swarm": True}, {"TASKLIST_UPDATED", "LEAD_DECISION"}),
    ("simple", {"require_approval": True, "auto_approve": True}, {"APPROVAL_REQUESTED", "APPROVAL_DECISION"}),
]


@pytest.mark.parametrize(("mode", "context", "expected"), GRAMMAR_CASES)
def test_scenario_grammar_over_sse(fast_stack: Stack, mode: str, context: dict, expected: set[str]) -> None:
    workflow_id = submit(fast_stack, mode, **context)
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id})
    events = check_stream(frames)
    types = types_of(frames)
    assert expected <= set(types)
    assert types[-2] == "WORKFLOW_COMPLETED"
    assert types.count("AGENT_STARTED") == types.count("AGENT_COMPLETED") > 0
    progress = [e["payload"]["percent"] for e in events if e.get("type") == "PROGRESS"]
    assert progress[-1] == 100.0
    final = wait_status(fast_stack, workflow_id, "TASK_STATUS_COMPLETED", timeout=5)
    assert final["usage"]["total_tokens"] > 0 and final["model_used"] and final["progress"] == 1.0


def test_gates_off_means_no_team_events(fast_stack: Stack) -> None:
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": submit(fast_stack, "supervisor")})
    check_stream(frames)
    assert not {"TEAM_RECRUITED", "TEAM_RETIRED", "MESSAGE_SENT", "MESSAGE_RECEIVED"} & set(types_of(frames))


def control(stack: Stack, workflow_id: str, action: str) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/api/v1/tasks/{workflow_id}/{action}", json={"reason": "test"}, timeout=10)


def test_pause_resume_then_complete(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "standard", speed=1)
    reader = Reader(fast_stack, workflow_id)
    reader.start()
    wait_status(fast_stack, workflow_id, "TASK_STATUS_RUNNING")
    assert control(fast_stack, workflow_id, "pause").status_code == 202
    wait_status(fast_stack, workflow_id, "TASK_STATUS_PAUSED")
    state = httpx.get(f"{fast_stack.base_url}/api/v1/tasks/{workflow_id}/control-state", timeout=10).json()
    assert state["is_paused"] is True and state["paused_at"]
    assert control(fast_stack, workflow_id, "pause").status_code == 409
    resumed = control(fast_stack, workflow_id, "resume")
    assert resumed.status_code == 202, resumed.text
    frames = reader.result()
    check_stream(frames)
    types = types_of(frames)
    at = types.index("WORKFLOW_PAUSING")
    assert types[at : at + 3] == ["WORKFLOW_PAUSING", "WORKFLOW_PAUSED", "WORKFLOW_RESUMED"]
    assert frames[at + 1].json["checkpoint"]
    assert types[-2] == "WORKFLOW_COMPLETED"
    assert status(fast_stack, workflow_id)["status"] == "TASK_STATUS_COMPLETED"
    assert control(fast_stack, workflow_id, "resume").status_code == 409


@pytest.mark.parametrize("paused_first", [False, True])
def test_cancel_at_a_checkpoint(fast_stack: Stack, paused_first: bool) -> None:
    workflow_id = submit(fast_stack, "standard", speed=0.5)
    reader = Reader(fast_stack, workflow_id)
    reader.start()
    wait_status(fast_stack, workflow_id, "TASK_STATUS_RUNNING")
    if paused_first:
        assert control(fast_stack, workflow_id, "pause").status_code == 202
        wait_status(fast_stack, workflow_id, "TASK_STATUS_PAUSED")
    response = control(fast_stack, workflow_id, "cancel")
    assert response.status_code == 202 and response.json()["success"] is True
    frames = reader.result()
    check_stream(frames)
    types = types_of(frames)
    assert types[-3:] == ["WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED", "STREAM_END"]
    cancelled = frames[-2].json
    assert cancelled["checkpoint"] and cancelled["was_paused"] is paused_first
    wait_status(fast_stack, workflow_id, "TASK_STATUS_CANCELLED", timeout=5)
    again = control(fast_stack, workflow_id, "cancel")
    assert again.status_code == 202 and again.json()["success"] is False


def test_budget_thresholds_then_failure(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "standard", token_budget=1500, output_tokens=500)
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id})
    events = check_stream(frames)
    budget = [e["payload"] for e in events if e.get("type") == "BUDGET_THRESHOLD"]
    assert [b["threshold_percent"] for b in budget] == [50, 80, 100]
    for b in budget:
        assert b["tokens_budget"] == 1500 and b["budget_type"] == "task"
        assert b["usage_percent"] >= b["threshold_percent"] and b["tokens_used"] > 0
    assert types_of(frames)[-2] == "WORKFLOW_FAILED"
    final = wait_status(fast_stack, workflow_id, "TASK_STATUS_FAILED", timeout=5)
    assert "budget" in final["error"].lower()


def test_fail_at_a_step(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "complex", fail_at="data-agent:tool")
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id})
    check_stream(frames)
    assert types_of(frames)[-3:] == ["ERROR_OCCURRED", "WORKFLOW_FAILED", "STREAM_END"]
    wait_status(fast_stack, workflow_id, "TASK_STATUS_FAILED", timeout=5)


def test_stall_times_out(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "standard", stall_at="analysis-agent:start")
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id}, timeout=30)
    check_stream(frames)
    failed = frames[-2].json
    assert failed["type"] == "WORKFLOW_FAILED" and "timed out" in failed["message"]
    wait_status(fast_stack, workflow_id, "TASK_STATUS_TIMEOUT", timeout=5)


def test_garbage_goes_to_the_dlq_and_tasks_still_complete(fast_stack: Stack) -> None:
    topics = Topics(fast_stack.prefix)
    garbage = {topics.events_raw: b"\x00not json", topics.tasks: b'{"kind": "task_submitted"}'}
    asyncio.run(_produce(fast_stack.bootstrap, garbage))
    workflow_id = submit(fast_stack, "simple")
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id})
    check_stream(frames)
    # the processor reads both topics; the runner reads tasks too, and dead-letters on its own
    wanted = {(topics.events_raw, "processor"), (topics.tasks, "processor"), (topics.tasks, "runner")}
    dead = asyncio.run(_read_dlq(fast_stack.bootstrap, topics.dlq, set(garbage.values()), wanted))
    assert all(h["reason"].startswith("cannot decode") for h in dead)


async def _produce(bootstrap: str, records: dict[str, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, value in records.items():
            await producer.send_and_wait(topic, value, key=b"garbage-key")
    finally:
        await producer.stop()


async def _read_dlq(bootstrap: str, topic: str, values: set[bytes], wanted: set[tuple[str, str]],
                    wait_s: float = 20.0) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while {(h["source_topic"], h["service"]) for h in found} != wanted and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value in values:
                        found.append({k: v.decode() for k, v in record.headers})
    finally:
        await consumer.stop()
    assert {(h["source_topic"], h["service"]) for h in found} == wanted, found
    return found


def test_one_llm_call_exhausts_a_small_budget(fast_stack: Stack) -> None:
    workflow_id = submit(fast_stack, "standard", query="Exhaust a small budget", token_budget=400)
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id}, timeout=30)
    events = check_stream(frames)
    assert [e["payload"]["threshold_percent"] for e in events if e.get("type") == "BUDGET_THRESHOLD"] == [50, 80, 100]
    assert types_of(frames)[-2] == "WORKFLOW_FAILED"
    wait_status(fast_stack, workflow_id, "TASK_STATUS_FAILED", timeout=5)


def test_an_undecided_approval_is_denied_at_its_deadline_not_timed_out_as_silent(fast_stack: Stack) -> None:
    # Silent workflows time out after 3 s here; a pending approval holds that off until it expires (5 s).
    workflow_id = submit(fast_stack, "simple", require_approval=True, approval_timeout_s=5)
    frames, _ = read_stream(fast_stack.base_url, {"workflow_id": workflow_id})
    events = check_stream(frames)
    assert types_of(frames)[-4:] == ["APPROVAL_REQUESTED", "APPROVAL_DECISION", "WORKFLOW_FAILED", "STREAM_END"]
    request, decision, failed = events[-3:]
    assert decision["payload"]["decided_by"] == "timeout" and decision["payload"]["approved"] is False
    assert failed["payload"]["reason"] == "approval_timeout"
    waited = datetime.fromisoformat(decision["timestamp"]) - datetime.fromisoformat(request["timestamp"])
    assert waited.total_seconds() >= 4.9
    final = wait_status(fast_stack, workflow_id, "TASK_STATUS_FAILED", timeout=5)
    assert final["error"] == "Approval timed out"
    [approval] = final["approvals"]
    assert approval["status"] == "denied" and approval["decided_by"] == "timeout"
