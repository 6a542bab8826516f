"""Lifetimes end to end (docs/state.md): tasks that live seconds, a broker that deletes within seconds.

The stack's tasks live LIFETIME_S after they end and its events as long; the test broker checks
retention every second. A task past its lifetime answers 404 on every route and leaves every list;
its state is tombstoned on the task-state topic and its events are deleted by Kafka. A stream for a
workflow whose events are gone (expired, or never written) ends with the documented error frame.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import websockets
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agentwire.schema import RawEvent, TaskState, TaskStatus, Topics, encode
from agentwire.schema.commands import TaskSubmitted
from tests.support.sse import read_stream
from tests.support.stack import Stack
from tests.support.topics import values_of
from tests.support.wait import eventually, eventually_async

LIFETIME_S = 10.0
TENANT = "default"  # anonymous callers' tenant with auth skipped
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def short_lived(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(kafka_bootstrap, tmp_path_factory.mktemp("lifetimes"), extra_env={
        "GATEWAY_SKIP_AUTH": "1",
        "AGENTWIRE_RETENTION__TASKS_DAYS": str(LIFETIME_S / 86400),
        "AGENTWIRE_RETENTION__SWEEP_INTERVAL_S": "0.5",
        "AGENTWIRE_KAFKA__RETENTION_HOURS": str(LIFETIME_S / 3600),
        # no recent-events cache: streams read Kafka, so they see what the broker deleted
        "AGENTWIRE_STREAMING__RECENT_CACHE_MB": "0",
    })
    with running.running():
        yield running


def submit(stack: Stack) -> str:
    body = {"query": "Research AI trends", "context": {"speed": 20}}
    response = httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def ws_frames(stack: Stack, workflow_id: str) -> tuple[list[dict[str, object]], int | None]:
    async def read() -> tuple[list[dict[str, object]], int | None]:
        url = stack.base_url.replace("http://", "ws://") + f"/api/v1/stream/ws?workflow_id={workflow_id}"
        frames: list[dict[str, object]] = []
        async with websockets.connect(url, open_timeout=10) as ws:
            try:
                while True:
                    frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 30)))
            except websockets.ConnectionClosedOK:
                pass
            return frames, ws.close_code

    return asyncio.run(read())


def test_a_task_past_its_lifetime_is_gone_from_every_route_and_topic(short_lived: Stack) -> None:
    base = short_lived.base_url
    workflow_id = submit(short_lived)
    frames, _ = read_stream(base, {"workflow_id": workflow_id})
    assert frames[-1].event == "done"  # alive: the whole stream
    listed = httpx.get(f"{base}/api/v1/tasks", params={"limit": 100}, timeout=10).json()
    assert workflow_id in [t["task_id"] for t in listed["tasks"]]

    ended = time.monotonic()
    eventually(lambda: httpx.get(f"{base}/api/v1/tasks/{workflow_id}", timeout=10).status_code == 404,
               LIFETIME_S + 15, "status 404 after the lifetime")
    assert time.monotonic() - ended >= LIFETIME_S - 3  # not before its time (the stream read took a moment)

    for method, path in [
        ("GET", f"/api/v1/tasks/{workflow_id}"),
        ("GET", f"/api/v1/tasks/{workflow_id}/events"),
        ("GET", f"/api/v1/tasks/{workflow_id}/control-state"),
        ("POST", f"/api/v1/tasks/{workflow_id}/cancel"),
        ("POST", f"/api/v1/tasks/{workflow_id}/pause"),
        ("POST", f"/api/v1/tasks/{workflow_id}/resume"),
        ("POST", "/api/v1/stream/token"),
    ]:
        body = {"workflow_id": workflow_id} if path.endswith("token") else None
        response = httpx.request(method, f"{base}{path}", json=body, timeout=10)
        assert response.status_code == 404, (method, path, response.text)
    listed = httpx.get(f"{base}/api/v1/tasks", params={"limit": 100}, timeout=10).json()
    assert workflow_id not in [t["task_id"] for t in listed["tasks"]]

    started = time.monotonic()
    frames, comments = read_stream(base, {"workflow_id": workflow_id}, timeout=15)
    assert [f.event for f in frames] == ["ERROR_OCCURRED"]
    assert frames[0].json["message"] == "Workflow not found" and frames[0].id is None
    assert time.monotonic() - started < 5
    messages, code = ws_frames(short_lived, workflow_id)
    assert [m["message"] for m in messages] == ["Workflow not found"] and code == 1000

    topics = Topics(short_lived.prefix)
    # the 404s come at the lifetime (reads hide an expired row at once); the tombstone follows with the
    # indexers' next sweep (every 0.5 s here), which the routes above need not have waited for
    asyncio.run(eventually_async(lambda: tombstoned(short_lived.bootstrap, topics.task_state, workflow_id), 15,
                                 "a tombstone on the task-state topic"))
    asyncio.run(eventually_async(lambda: events_deleted(short_lived.bootstrap, topics.events, workflow_id),
                                 LIFETIME_S + 20, "the workflow's events deleted by the broker"))
    processor_forgets(short_lived, workflow_id)


def processor_forgets(stack: Stack, workflow_id: str) -> None:
    """The processor tombstones the workflow's row and task, and a late event cannot bring it back."""
    bootstrap, topics = stack.bootstrap, Topics(stack.prefix)
    for table in ("workflows", "tasks"):
        changelog = f"{stack.prefix}-processor-{table}-changelog"

        async def forgotten(changelog: str = changelog) -> bool:
            values = await values_of(bootstrap, changelog, orjson.dumps(workflow_id).decode(),
                                     partition_key=workflow_id)
            return bool(values) and values[-1] is None

        asyncio.run(eventually_async(forgotten, 30, f"a tombstone on {changelog}"))
    # A runner's late event for it (a retry after a long partition): dead-lettered, no new state
    late = encode(RawEvent(event_id=f"{workflow_id}:99", workflow_id=workflow_id, type="AGENT_STARTED"))
    asyncio.run(send(bootstrap, topics.events_raw, workflow_id, late))

    async def dead_lettered() -> bool:
        return late in await values_of(bootstrap, topics.dlq, workflow_id)

    asyncio.run(eventually_async(dead_lettered, 30, "the late event in the dead-letter topic"))
    assert asyncio.run(values_of(bootstrap, topics.task_state, workflow_id))[-1] is None
    assert httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10).status_code == 404


def test_stream_of_an_ended_workflow_without_events_ends_with_the_documented_error(short_lived: Stack) -> None:
    workflow_id = f"task-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    task = TaskSubmitted(workflow_id=workflow_id, tenant=TENANT, query="q", session_id="s", created_at=now)
    ended = TaskState(task=task, status=TaskStatus.COMPLETED, last_seq=7, updated_at=now, completed_at=now)
    asyncio.run(write_state(short_lived, ended))
    assert httpx.get(f"{short_lived.base_url}/api/v1/tasks/{workflow_id}", timeout=10).status_code == 200

    started = time.monotonic()
    frames, _ = read_stream(short_lived.base_url, {"workflow_id": workflow_id}, timeout=20)
    assert [f.event for f in frames] == ["ERROR_OCCURRED"]
    expected = {"workflow_id": workflow_id, "type": "ERROR_OCCURRED", "message": "Workflow events expired"}
    assert frames[0].json == expected
    assert frames[0].id is None
    assert time.monotonic() - started < 10  # the grace for late writes (2 s) and one history read
    messages, code = ws_frames(short_lived, workflow_id)
    assert [m["message"] for m in messages] == ["Workflow events expired"] and code == 1000


def test_stream_of_a_live_task_whose_events_expired_ends_with_the_documented_error(short_lived: Stack) -> None:
    """An operator shrinks the events topic's retention below the tasks' lifetime: the streams still end."""
    workflow_id = submit(short_lived)
    frames, _ = read_stream(short_lived.base_url, {"workflow_id": workflow_id})
    assert frames[-1].event == "done"
    topics = Topics(short_lived.prefix)
    asyncio.run(set_retention(short_lived.bootstrap, topics.events, 200))
    asyncio.run(eventually_async(lambda: events_deleted(short_lived.bootstrap, topics.events, workflow_id),
                                 LIFETIME_S, "events deleted while the task lives"))
    assert httpx.get(f"{short_lived.base_url}/api/v1/tasks/{workflow_id}", timeout=10).status_code == 200
    frames, _ = read_stream(short_lived.base_url, {"workflow_id": workflow_id}, timeout=20)
    assert [f.event for f in frames] == ["ERROR_OCCURRED"]
    assert frames[0].json["message"] == "Workflow events expired"


async def write_state(stack: Stack, state: TaskState) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(Topics(stack.prefix).task_state, encode(state), key=state.workflow_id.encode())
    finally:
        await producer.stop()


async def set_retention(bootstrap: str, topic: str, retention_ms: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": str(retention_ms)})])
    finally:
        await admin.close()


async def events_deleted(bootstrap: str, topic: str, workflow_id: str) -> bool:
    """True once no event of the workflow is left in its partition."""
    return not await values_of(bootstrap, topic, workflow_id)


async def tombstoned(bootstrap: str, topic: str, workflow_id: str) -> bool:
    """True if the task-state topic holds a tombstone for the workflow."""
    return None in await values_of(bootstrap, topic, workflow_id)


async def send(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
