"""A crash at any instant of a submission never leaves a task that does not end.

Ingest's fault hook (``ingest.fault_point``) kills the gateway with SIGKILL at a named point
of a submission; the client's retry with the same Idempotency-Key, once the gateway is back,
must answer the task, and the task must run to completion with a complete stream. Without a
key the crash may leave a task the client never heard of, but never one that stays QUEUED.
A QUEUED state whose command is missing (what an ingest that wrote the state and the command
separately left behind) is repaired by the replay of its submission.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from agentwire.auth import ANONYMOUS_TENANT
from agentwire.ingest.requests import SubmitTask
from agentwire.ingest.tasks import _idempotent_id, _request_hash
from agentwire.schema import TaskState, TaskStatus, TaskSubmitted, Topics, encode
from tests.integration.flows import Reader, check_stream, wait_status
from tests.support.stack import Stack
from tests.support.wait import eventually

TERMINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED", "TASK_STATUS_TIMEOUT"}
FAULT = "AGENTWIRE_INGEST__FAULT_POINT"


@pytest.fixture(scope="module")
def crash_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(kafka_bootstrap, tmp_path_factory.mktemp("crash-stack"), extra_env={"GATEWAY_SKIP_AUTH": "1"})
    with running.running():
        yield running


def restart_gateway(stack: Stack, fault_point: str | None) -> None:
    gateway = stack.services["gateway"]
    gateway.stop()
    gateway.env.pop(FAULT, None)
    if fault_point:
        gateway.env[FAULT] = fault_point
    gateway.start()
    gateway.wait_ready()


def body(query: str) -> dict[str, Any]:
    return {"query": query, "mode": "simple", "context": {"speed": 20}}


def post(stack: Stack, data: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{stack.base_url}/api/v1/tasks", json=data, headers=headers, timeout=10)


def completes(stack: Stack, workflow_id: str) -> None:
    reader = Reader(stack, workflow_id, timeout=60)
    reader.start()
    check_stream(reader.result(timeout=60))
    wait_status(stack, workflow_id, "TASK_STATUS_COMPLETED", timeout=10)


@pytest.mark.parametrize("point", ["before_send", "after_send", "after_ack", "after_store"])
def test_retry_after_a_crash_inside_a_submission_completes(crash_stack: Stack, point: str) -> None:
    restart_gateway(crash_stack, point)
    key = f"crash-{point}-{uuid.uuid4().hex}"
    data = body(f"crash at {point}")
    with pytest.raises(httpx.TransportError):
        post(crash_stack, data, key)
    gateway = crash_stack.services["gateway"]
    assert gateway.process is not None
    assert gateway.process.wait(10) == -9, "the fault hook did not kill the gateway"
    restart_gateway(crash_stack, None)
    retried = post(crash_stack, data, key)
    assert retried.status_code == 200, retried.text
    if point in ("after_ack", "after_store"):  # the command was durable before the crash: a replay
        assert retried.headers.get("X-Idempotency-Cached") == "true"
    if point == "before_send":  # nothing was written: the retry is the first submission
        assert retried.headers.get("X-Idempotency-Cached") is None
    workflow_id = retried.json()["workflow_id"]
    completes(crash_stack, workflow_id)
    again = post(crash_stack, data, key)
    assert again.headers.get("X-Idempotency-Cached") == "true" and again.json()["workflow_id"] == workflow_id


def test_crash_after_ack_without_key_leaves_no_stuck_task(crash_stack: Stack) -> None:
    restart_gateway(crash_stack, "after_ack")
    query = f"unkeyed crash {uuid.uuid4().hex}"
    with pytest.raises(httpx.TransportError):
        post(crash_stack, body(query))
    restart_gateway(crash_stack, None)

    def the_task() -> dict[str, Any] | None:
        listed = httpx.get(f"{crash_stack.base_url}/api/v1/tasks", params={"limit": 100}, timeout=10).json()
        mine = [t for t in listed["tasks"] if t["query"] == query]
        assert len(mine) <= 1
        return mine[0] if mine and mine[0]["status"] in TERMINAL else None

    task = eventually(the_task, 60, "the unanswered task terminal")
    assert task["status"] == "TASK_STATUS_COMPLETED"


def test_replay_repairs_a_queued_state_without_its_command(crash_stack: Stack) -> None:
    """The data an older ingest left after a crash between its two writes: QUEUED state, no command."""
    key = f"legacy-{uuid.uuid4().hex}"
    data = body("legacy ghost")
    task = TaskSubmitted(
        workflow_id=_idempotent_id(ANONYMOUS_TENANT, key),
        tenant=ANONYMOUS_TENANT,
        query=data["query"],
        session_id="session-legacy",
        mode="simple",
        context=data["context"],
        request_hash=_request_hash(SubmitTask.model_validate(data)),
    )
    asyncio.run(write_state_only(crash_stack, TaskState(task=task, status=TaskStatus.QUEUED,
                                                        updated_at=task.created_at)))
    replay = post(crash_stack, data, key)
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("X-Idempotency-Cached") == "true"
    assert replay.json()["workflow_id"] == task.workflow_id
    completes(crash_stack, task.workflow_id)


async def write_state_only(stack: Stack, state: TaskState) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        topic = Topics(stack.prefix).task_state
        await producer.send_and_wait(topic, encode(state), key=state.workflow_id.encode())
    finally:
        await producer.stop()
