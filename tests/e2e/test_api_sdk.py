"""The official Shannon SDK (sync and async clients) and its CLI against the gateway with auth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shannon import AsyncShannonClient, ShannonClient, errors
from shannon.models import TaskStatusEnum

from tests.e2e.conftest import AuthStack
from tests.support.wait import eventually, eventually_async

FAST = {"speed": 20}
SHANNON_CLI = str(Path(sys.executable).parent / "shannon")


def test_sync_client_covers_the_task_api(auth_stack: AuthStack) -> None:
    client = ShannonClient(base_url=auth_stack.base_url, api_key=auth_stack.key_a)
    try:
        assert client.health()["status"] == "healthy"
        assert client.readiness()["status"] == "ready"
        spec = client.get_openapi_spec()
        assert spec["openapi"].startswith("3.") and "/api/v1/tasks" in spec["paths"]

        handle = client.submit_task(query="Research AI trends", context=FAST, mode="simple")
        assert handle.task_id == handle.workflow_id and handle.session_id
        status = client.wait(handle.task_id, timeout=30, poll_interval=0.2)
        assert status.status == TaskStatusEnum.COMPLETED and status.result and status.progress == 1.0

        tasks, total = client.list_tasks(limit=5)
        assert total >= 1 and handle.task_id in [t.task_id for t in tasks]
        events = client.get_task_events(handle.task_id)
        types = [e.type for e in events]
        assert types[0] == "WORKFLOW_STARTED" and "LLM_PARTIAL" not in types

        streamed = [e for e in client.stream(handle.workflow_id, types=["AGENT_STARTED", "WORKFLOW_COMPLETED"])]
        assert {e.type for e in streamed} <= {"AGENT_STARTED", "WORKFLOW_COMPLETED"}
        assert streamed[-1].type == "WORKFLOW_COMPLETED"
        everything = list(client.stream(handle.workflow_id))
        resumed = list(client.stream(handle.workflow_id, last_event_id=everything[4].stream_id))
        assert [(e.type, e.seq) for e in resumed] == [(e.type, e.seq) for e in everything[5:]]
        ws_events = list(client.stream_ws(handle.workflow_id))
        assert ws_events[-1].type == "STREAM_END"
        assert [e.seq for e in ws_events] == list(range(1, len(ws_events) + 1))

        assert client.cancel(handle.task_id) is False  # already finished (202, success false)

        slow, stream_url = client.submit_and_stream(query="Slow one", context={"speed": 1})
        assert stream_url.endswith(slow.workflow_id)
        assert client.pause_task(slow.task_id, reason="hold") is True
        _until(lambda: client.get_control_state(slow.task_id).is_paused)
        state = client.get_control_state(slow.task_id)
        assert state.is_paused and state.paused_at is not None
        assert client.resume_task(slow.task_id) is True
        _until(lambda: not client.get_control_state(slow.task_id).is_paused)
        assert client.cancel(slow.task_id, reason="done testing") is True
        final = client.wait(slow.task_id, timeout=30, poll_interval=0.2)
        assert final.status == TaskStatusEnum.CANCELLED
        assert client.get_control_state(slow.task_id).is_cancelled

        with pytest.raises(errors.TaskNotFoundError):
            client.get_status("task-missing")
    finally:
        client.close()


def test_sdk_errors_for_bad_key_and_foreign_task(auth_stack: AuthStack) -> None:
    owner = ShannonClient(base_url=auth_stack.base_url, api_key=auth_stack.key_a)
    other = ShannonClient(base_url=auth_stack.base_url, api_key=auth_stack.key_b)
    wrong = ShannonClient(base_url=auth_stack.base_url, api_key="nope")
    try:
        handle = owner.submit_task(query="mine", context=FAST)
        with pytest.raises(errors.TaskNotFoundError):
            other.get_status(handle.task_id)
        with pytest.raises(errors.AuthenticationError):
            wrong.list_tasks()
    finally:
        for client in (owner, other, wrong):
            client.close()


_until = eventually


async def _until_async(fetch, check, limit_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async def holds() -> bool:
        return bool(check(await fetch()))

    await eventually_async(holds, limit_s)


def test_async_client(auth_stack: AuthStack) -> None:
    async def scenario() -> None:
        client = AsyncShannonClient(base_url=auth_stack.base_url, bearer_token=auth_stack.key_a)
        try:
            assert (await client.health())["status"] == "healthy"
            assert (await client.readiness())["status"] == "ready"
            assert "paths" in await client.get_openapi_spec()
            handle = await client.submit_task(query="Async research", context=FAST)
            types = [e.type async for e in client.stream(handle.workflow_id)]
            assert types[0] == "WORKFLOW_STARTED" and "WORKFLOW_COMPLETED" in types
            status = await client.wait(handle.task_id, timeout=30, poll_interval=0.2)
            assert status.status == TaskStatusEnum.COMPLETED
            first = await client.get_status(handle.task_id)
            assert first.workflow_id == handle.workflow_id
            tasks, _ = await client.list_tasks(limit=100)
            assert handle.task_id in [t.task_id for t in tasks]
            assert await client.get_task_events(handle.task_id)
            ws_types = [e.type async for e in client.stream_ws(handle.workflow_id, types=["AGENT_COMPLETED"])]
            assert ws_types == ["AGENT_COMPLETED"] * 3
            resumed = [e.seq async for e in client.stream(handle.workflow_id, last_event_id="3")]
            assert resumed[0] == 4
            slow, _ = await client.submit_and_stream(query="Slow", context={"speed": 1})
            assert await client.pause_task(slow.task_id)
            await _until_async(lambda: client.get_control_state(slow.task_id), lambda s: s.is_paused)
            assert await client.resume_task(slow.task_id)
            await _until_async(lambda: client.get_control_state(slow.task_id), lambda s: not s.is_paused)
            assert await client.cancel(slow.task_id)
            final = await client.wait(slow.task_id, timeout=30, poll_interval=0.2)
            assert final.status == TaskStatusEnum.CANCELLED
        finally:
            await client.close()

    asyncio.run(scenario())


def _cli(auth_stack: AuthStack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHANNON_BASE_URL": auth_stack.base_url, "SHANNON_API_KEY": auth_stack.key_a}
    return subprocess.run([SHANNON_CLI, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_shannon_cli_submit_wait_status_stream(auth_stack: AuthStack) -> None:
    submitted = _cli(auth_stack, "submit", "CLI research", "--mode", "simple", "--wait")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "✓ Result:" in submitted.stdout
    task_id = next(line.split(":", 1)[1].strip() for line in submitted.stdout.splitlines() if "Task ID:" in line)
    status = _cli(auth_stack, "status", task_id)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Status: COMPLETED" in status.stdout
    assert "Progress: 100.0%" in status.stdout
    streamed = _cli(auth_stack, "stream", task_id)
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr
    assert "WORKFLOW_STARTED" in streamed.stdout and "WORKFLOW_COMPLETED" in streamed.stdout
    url_flag = _cli(auth_stack, "--base-url", auth_stack.base_url, "status", task_id)
    assert url_flag.returncode == 0
