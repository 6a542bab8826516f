"""The same flow through the official Shannon SDK, unmodified."""

from __future__ import annotations

from shannon import ShannonClient
from shannon.models import TaskStatusEnum

from tests.support.stack import Stack


def test_sdk_submit_stream_and_status(stack: Stack) -> None:
    client = ShannonClient(base_url=stack.base_url)
    try:
        handle = client.submit_task(query="Research AI trends and create summary", context={"speed": 20})
        types = []
        seqs = []
        for event in client.stream(handle.workflow_id):
            types.append(event.type)
            if event.seq:
                seqs.append(event.seq)
            if event.type == "WORKFLOW_COMPLETED":
                break
        assert types[0] == "WORKFLOW_STARTED"
        assert types[-1] == "WORKFLOW_COMPLETED"
        assert types.count("AGENT_STARTED") == 3
        assert seqs == list(range(1, len(seqs) + 1))

        status = client.wait(handle.task_id, timeout=30, poll_interval=0.2)
        assert status.status == TaskStatusEnum.COMPLETED
        assert status.result
    finally:
        client.close()


def test_sdk_stream_ends_by_itself_at_done(stack: Stack) -> None:
    client = ShannonClient(base_url=stack.base_url)
    try:
        handle = client.submit_task(query="Short one", context={"speed": 20})
        types = [event.type for event in client.stream(handle.workflow_id)]
        assert types[-1] == "done"
        assert "WORKFLOW_COMPLETED" in types
    finally:
        client.close()
