"""The broker away for longer than the producers' request timeout: every task still ends exactly.

Kafka fails a batch it could not deliver within ``kafka.request_timeout_ms``. Here that timeout is
2 s and the broker stays down until the runner has seen its sends fail, so every send in flight
fails: the runner's plays, the processor's admissions and outputs, its changelog and task-state
writes. Each must be sent again once Kafka is
back — a play that gave up, or an acknowledged record whose forward failed, strands its task
(QUEUED or RUNNING until the workflow timeout, with a stream that never ends).

This test runs its own broker (it stops it), on the same ports and data directory across the outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.flows import check_stream, service_metric, status
from tests.integration.test_faults import finish, start_streams, wait_until_streaming
from tests.support.broker import broker_script
from tests.support.stack import Stack
from tests.support.wait import eventually

REQUEST_TIMEOUT_MS = 2000


@pytest.fixture
def broker_and_stack(tmp_path: Path) -> Iterator[tuple[object, Stack]]:
    script = broker_script()
    broker = script.start(tmp_path / "kafka", partitions=12, timeout=120.0)
    stack = Stack(broker.bootstrap, tmp_path / "stack", extra_env={
        "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_KAFKA__REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS)})
    stack.workdir.mkdir()
    holder = {"broker": broker, "script": script}
    try:
        with stack.running():
            yield holder, stack  # type: ignore[misc]
    finally:
        script.stop(holder["broker"])


def test_tasks_playing_through_an_outage_longer_than_the_request_timeout_all_end_exactly(
    broker_and_stack: tuple[dict[str, object], Stack],
) -> None:
    holder, stack = broker_and_stack
    script = holder["script"]
    readers = start_streams(stack, 6, speed=0.5)
    wait_until_streaming(readers, 2)
    assert any(r.is_alive() for _, r in readers), "every stream ended before the outage"

    broker = holder["broker"]
    broker.stop()  # type: ignore[attr-defined]
    # down until the sends in flight have failed (request timeout) and plays are being replayed
    eventually(lambda: service_metric(stack, "runner", "agentwire_runner_play_replays_total") > 0, 60,
               "a play's send failed while Kafka was away")
    holder["broker"] = script.start(  # type: ignore[attr-defined]
        Path(broker.data_dir), broker.port, broker.controller_port, partitions=12, timeout=120.0)  # type: ignore[attr-defined]

    # tasks submitted right after the outage are admitted and played too
    late = start_streams(stack, 2)
    finish(stack, readers + late)
    for workflow_id, reader in readers + late:
        check_stream(reader.result(timeout=5))
        assert status(stack, workflow_id)["status"] == "TASK_STATUS_COMPLETED", workflow_id
