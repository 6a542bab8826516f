"""The system as containers from the built images: Kafka and every service on one container network.

Everything goes through the published ports, as a user's client would: the official Shannon SDK against
the gateway, raw SSE against the edge, the REST API against ingest.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from shannon import ShannonClient
from shannon.models import TaskStatusEnum

from tests.containers.stack import SERVICES, ContainerStack
from tests.integration.flows import check_stream
from tests.support.sse import Frame, parse
from tests.support.wait import eventually


def submit(stack: ContainerStack, speed: float, **context: Any) -> str:
    body = {"query": "Research AI trends", "context": {"speed": speed, **context}}
    response = httpx.post(f"{stack.url('ingest')}/api/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def read_sse(stack: ContainerStack, workflow_id: str, *, last_event_id: str | None = None,
             until: int | None = None, timeout: float = 90.0) -> list[Frame]:
    """Frames from the edge container: to the stream's end, or only the first ``until`` of them."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    frames: list[Frame] = []
    with httpx.stream("GET", f"{stack.url('edge')}/api/v1/stream/sse", params={"workflow_id": workflow_id},
                      headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for item in parse(response.iter_lines()):
            if isinstance(item, Frame):
                frames.append(item)
                if until is not None and len(frames) >= until:
                    break
    return frames


# The first test also pays for starting the containers (about 40 s here, more under load).
@pytest.mark.timeout(400)
def test_probes_say_not_ready_until_kafka_answers(containers: ContainerStack) -> None:
    # recorded while the services ran and Kafka was not started yet
    assert containers.probes_before_kafka == {service: (200, 503) for service in SERVICES}
    assert all(containers.ready(service) for service in SERVICES)


def test_sdk_submit_stream_and_completion(containers: ContainerStack) -> None:
    client = ShannonClient(base_url=containers.base_url)
    try:
        handle = client.submit_task(query="Research AI trends and create summary", context={"speed": 20})
        types, seqs = [], []
        for event in client.stream(handle.workflow_id):
            types.append(event.type)
            if event.seq:
                seqs.append(event.seq)
        assert types[0] == "WORKFLOW_STARTED" and "WORKFLOW_COMPLETED" in types and types[-1] == "done"
        assert seqs == list(range(1, len(seqs) + 1))
        status = client.wait(handle.task_id, timeout=30, poll_interval=0.2)
        assert status.status == TaskStatusEnum.COMPLETED and status.result
    finally:
        client.close()


def test_resume_with_last_event_id_after_the_edge_container_restarts(containers: ContainerStack) -> None:
    workflow_id = submit(containers, speed=2)
    first = read_sse(containers, workflow_id, until=5)
    containers.kill_and_start("edge")
    rest = read_sse(containers, workflow_id, last_event_id=first[-1].id)
    events = check_stream(first + rest)
    assert events[4]["stream_id"] == first[-1].id


def test_a_processor_killed_mid_run_loses_nothing(containers: ContainerStack) -> None:
    workflow_ids = [submit(containers, speed=0.5) for _ in range(3)]  # slow: still running at the kill
    for workflow_id in workflow_ids:
        assert len(read_sse(containers, workflow_id, until=3, timeout=60)) == 3
    running = [w for w in workflow_ids if task_status(containers, w) != "TASK_STATUS_COMPLETED"]
    assert running, "every workflow finished before the kill"
    containers.kill_and_start("processor")
    for workflow_id in workflow_ids:
        events = check_stream(read_sse(containers, workflow_id, timeout=120))
        assert events[-1]["type"] == "WORKFLOW_COMPLETED"
        eventually(lambda w=workflow_id: task_status(containers, w) == "TASK_STATUS_COMPLETED", 30, f"{workflow_id}")


def task_status(stack: ContainerStack, workflow_id: str) -> str:
    response = httpx.get(f"{stack.url('ingest')}/api/v1/tasks/{workflow_id}", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])
