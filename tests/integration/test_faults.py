"""kill -9 of the processor or the runner mid-run: every stream still shows seq 1..N once, in order.

Each test runs its own stack (its own topic prefix), so killing its processes
disturbs no other test. A killed member's consumer-group session (10 s) must
expire before its partitions move, which bounds how long these tests take.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.flows import Reader, check_stream, service_metric, status, submit
from tests.support.stack import Stack
from tests.support.wait import eventually

TERMINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED", "TASK_STATUS_TIMEOUT"}
MODES = ["standard", "complex", "supervisor", "simple"]


@pytest.fixture
def own_stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(kafka_bootstrap, tmp_path, extra_env={"GATEWAY_SKIP_AUTH": "1"})
    with running.running():
        yield running


def start_streams(stack: Stack, count: int, speed: float = 1.5) -> list[tuple[str, Reader]]:
    started = []
    for i in range(count):
        workflow_id = submit(stack, MODES[i % len(MODES)], speed=speed, features=["dynamic_team_v1", "p2p_v1"])
        reader = Reader(stack, workflow_id, timeout=90)
        reader.start()
        started.append((workflow_id, reader))
    return started


def wait_until_streaming(readers: list[tuple[str, Reader]], frames: int, timeout: float = 30.0) -> None:
    try:
        eventually(lambda: all(r.streamed >= frames for _, r in readers), timeout, "streams started")
    except AssertionError:
        seen = {wf: [f.event for f in r.frames[:4]] + ([] if r.is_alive() else ["<ended>"]) for wf, r in readers}
        raise AssertionError(f"streams did not start: {seen}") from None


def finish(stack: Stack, readers: list[tuple[str, Reader]]) -> None:
    for workflow_id, reader in readers:
        try:
            frames = reader.result(timeout=90)
        except AssertionError as exc:  # what the hunt for a cause needs: where the task and the pipeline stand
            seen = {"task": status(stack, workflow_id).get("status"),
                    "dead-lettered": service_metric(stack, "processor", "agentwire_processor_dlq_records_total"),
                    "replays": service_metric(stack, "runner", "agentwire_runner_play_replays_total")}
            raise AssertionError(f"{exc}; {seen}") from None
        check_stream(frames)
        eventually(lambda w=workflow_id: status(stack, w)["status"] in TERMINAL, 10, f"{workflow_id} terminal")


def test_processor_killed_and_restarted(own_stack: Stack) -> None:
    readers = start_streams(own_stack, 6)
    wait_until_streaming(readers, 3)
    processor = own_stack.services["processor"]
    assert any(r.is_alive() for _, r in readers), "every stream ended before the kill"
    processor.kill()
    processor.start()
    finish(own_stack, readers)


def test_runner_killed_and_replaced(own_stack: Stack) -> None:
    readers = start_streams(own_stack, 6)
    wait_until_streaming(readers, 3)
    old = own_stack.services["runner"]
    assert any(r.is_alive() for _, r in readers), "every stream ended before the kill"
    old.kill()
    replacement = own_stack.add("runner2", "agentwire-runner")
    replacement.start()
    finish(own_stack, readers)


def test_one_of_two_processors_killed(own_stack: Stack) -> None:
    """Two workers share the partitions; SIGKILL one mid-run: the survivor takes its partitions over."""
    second = own_stack.add("processor2", "agentwire-processor")
    second.start()
    second.wait_ready()
    first = own_stack.services["processor"]
    first.wait_ready()  # readiness follows a completed rebalance: both workers hold partitions now
    readers = start_streams(own_stack, 8, speed=0.4)  # plays of ≈ 6 s: still running at the kill
    wait_until_streaming(readers, 3)
    assert any(r.is_alive() for _, r in readers), "every stream ended before the kill"
    first.kill()
    finish(own_stack, readers)
    assert second.process is not None and second.process.poll() is None


def test_an_approval_decided_before_a_runner_crash_survives_it(own_stack: Stack) -> None:
    # The runner consumes (and commits) the decision, acts on it, and is killed; its successor replays
    # the task from the start and must find the decision in Kafka, not in the dead runner's memory.
    workflow_id = submit(own_stack, "standard", speed=0.3, require_approval=True)
    reader = Reader(own_stack, workflow_id, timeout=90)
    reader.start()

    def requested() -> str | None:
        return next((str(f.json["payload"]["approval_id"]) for f in list(reader.frames)
                     if f.event == "APPROVAL_REQUESTED"), None)

    approval_id = eventually(requested, 30, "approval requested")
    decision = httpx.post(f"{own_stack.base_url}/api/v1/approvals/decision", timeout=10,
                          json={"approval_id": approval_id, "workflow_id": workflow_id, "approved": True})
    assert decision.status_code == 200, decision.text
    eventually(lambda: any(f.event == "AGENT_STARTED" for f in list(reader.frames)), 30, "the play went on")
    own_stack.services["runner"].kill()
    own_stack.add("runner2", "agentwire-runner").start()
    events = check_stream(reader.result(timeout=90))
    types = [e.get("type") for e in events]
    assert types.count("APPROVAL_REQUESTED") == types.count("APPROVAL_DECISION") == 1
    assert next(e for e in events if e.get("type") == "APPROVAL_DECISION")["payload"]["approved"] is True
    assert types[-1] == "WORKFLOW_COMPLETED"
    eventually(lambda: status(own_stack, workflow_id)["status"] == "TASK_STATUS_COMPLETED", 10, "completed")
