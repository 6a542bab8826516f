"""The sessions API through the unmodified Shannon SDK (and raw HTTP for the edges), tenancy included."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from shannon import ShannonClient, errors

from agentwire.schema import SessionMeta, encode, session_key
from tests.e2e.conftest import AuthStack
from tests.support.stack import Stack
from tests.support.wait import eventually

FAST = {"speed": 20}
QUERIES = ["First question", "Second question", "Third question"]


def _session(client: ShannonClient, queries: list[str] = QUERIES) -> tuple[str, list[str]]:
    session_id = f"s-{uuid.uuid4().hex[:12]}"
    ids = []
    for query in queries:
        handle = client.submit_task(query=query, session_id=session_id, mode="simple", context=FAST)
        client.wait(handle.workflow_id, timeout=30)
        ids.append(handle.workflow_id)
    return session_id, ids


@pytest.fixture
def client(stack: Stack) -> ShannonClient:
    sdk = ShannonClient(base_url=stack.base_url, default_timeout=30)
    yield sdk  # type: ignore[misc]
    sdk.close()


def test_a_session_lists_its_tasks_history_and_turns(client: ShannonClient) -> None:
    session_id, ids = _session(client)
    sessions, total = client.list_sessions(limit=100)
    assert total >= 1
    mine = next(s for s in sessions if s.session_id == session_id)
    assert mine.message_count == 3 and mine.total_tokens_used > 0 and mine.successful_tasks == 3
    assert mine.latest_task_query == QUERIES[-1] and mine.latest_task_status == "TASK_STATUS_COMPLETED"
    assert mine.first_task_mode == "simple" and mine.success_rate == 1.0 and mine.user_id

    session = client.get_session(session_id)
    assert session.session_id == session_id and session.task_count == 3 and session.title is None
    assert session.total_tokens_used == mine.total_tokens_used and session.total_cost_usd > 0

    history = client.get_session_history(session_id)
    assert [h.task_id for h in history] == ids and [h.query for h in history] == QUERIES
    assert all(h.status == "TASK_STATUS_COMPLETED" and h.tokens_used > 0 and h.completed_at for h in history)

    turns, count = client.get_session_events(session_id, limit=2, offset=1)
    assert count == 3 and [t.turn for t in turns] == [2, 3] and [t.task_id for t in turns] == ids[1:]
    assert [t.user_query for t in turns] == QUERIES[1:]
    for turn in turns:
        types = [e.type for e in turn.events]
        assert types[0] == "WORKFLOW_STARTED" and "LLM_OUTPUT" in types and "LLM_PARTIAL" not in types
        assert turn.final_output and turn.metadata["tokens_used"] > 0
        assert "simple-agent" in turn.metadata["agents_involved"]
    # Session filtering of the task list.
    listed, listed_total = client.list_tasks(session_id=session_id)
    assert listed_total == 3 and {t.task_id for t in listed} == set(ids)


def test_rename_and_delete(stack: Stack, client: ShannonClient) -> None:
    session_id, ids = _session(client, QUERIES[:1])
    assert client.update_session_title(session_id, "  Kafka research  ") is True
    assert client.get_session(session_id).title == "Kafka research"
    sessions, _ = client.list_sessions(limit=100)
    assert next(s for s in sessions if s.session_id == session_id).title == "Kafka research"
    for body in ({}, {"title": ""}, {"title": "   "}, {"title": "x" * 61}, {"title": 5}):
        response = httpx.patch(f"{stack.base_url}/api/v1/sessions/{session_id}", json=body, timeout=10)
        assert response.status_code == 400, body

    assert client.delete_session(session_id) is True
    with pytest.raises(errors.SessionNotFoundError):
        client.get_session(session_id)
    with pytest.raises(errors.SessionNotFoundError):
        client.get_session_history(session_id)
    with pytest.raises(errors.SessionNotFoundError):
        client.delete_session(session_id)
    assert session_id not in [s.session_id for s in client.list_sessions(limit=100)[0]]
    assert client.get_status(ids[0]).status.value == "COMPLETED"  # its tasks stay


def test_unknown_sessions_and_bad_parameters(stack: Stack, client: ShannonClient) -> None:
    with pytest.raises(errors.SessionNotFoundError):
        client.get_session("s-nope")
    with pytest.raises(errors.SessionNotFoundError):
        client.get_session_events("s-nope")
    with pytest.raises(errors.SessionNotFoundError):
        client.update_session_title("s-nope", "x")
    url = stack.base_url
    for path, status in [("/api/v1/sessions?limit=0", 400), ("/api/v1/sessions?limit=101", 400),
                         ("/api/v1/sessions?offset=-1", 400), ("/api/v1/sessions?cursor=nope", 400),
                         ("/api/v1/sessions?offset=", 400), ("/api/v1/tasks?limit=", 400),  # empty: no integer
                         ("/api/v1/sessions/bad%20id", 400), ("/api/v1/sessions/s-x/events?limit=0", 404)]:
        response = httpx.get(url + path, timeout=10)
        assert response.status_code == status and "error" in response.json(), path


def test_text_the_database_cannot_hold_is_refused_or_kept_out_of_its_sums(stack: Stack) -> None:
    """Found by fuzzing: a NUL in a query made every session list answer 500 (the totals parsed each
    task's JSON as jsonb, which holds no NUL); a session id that no session route could name was accepted."""
    url = stack.base_url
    session_id = f"s-{uuid.uuid4().hex[:12]}"
    answer = httpx.post(url + "/api/v1/tasks", json={"query": "a\x00b", "session_id": session_id,
                                                      "context": FAST, "mode": "simple"}, timeout=10)
    assert answer.status_code == 200, answer.text
    for bad in ["s\x00x", "bad id", "a/b", "x" * 129]:
        refused = httpx.post(url + "/api/v1/tasks", json={"query": "q", "session_id": bad}, timeout=10)
        assert refused.status_code == 400 and "session_id" in refused.json()["error"], bad
    created = httpx.get(f"{url}/api/v1/sessions/{session_id}", timeout=10)
    assert created.status_code == 200 and created.json()["task_count"] == 1
    listed = httpx.get(url + "/api/v1/sessions?limit=100", timeout=10)
    assert listed.status_code == 200 and session_id in [s["session_id"] for s in listed.json()["sessions"]]
    for title in ["\x00", " \t ", "a\x00"]:
        renamed = httpx.patch(f"{url}/api/v1/sessions/{session_id}", json={"title": title}, timeout=10)
        assert renamed.status_code == 400, title


def test_sessions_are_tenant_scoped(auth_stack: AuthStack) -> None:
    a = ShannonClient(base_url=auth_stack.base_url, api_key=auth_stack.key_a, default_timeout=30)
    b = ShannonClient(base_url=auth_stack.base_url, api_key=auth_stack.key_b, default_timeout=30)
    try:
        session_id, _ = _session(a, QUERIES[:1])
        headers = {"X-API-Key": auth_stack.key_b}
        url = f"{auth_stack.base_url}/api/v1/sessions"

        def answers(sid: str) -> list[tuple[int, object]]:
            out: list[tuple[int, object]] = []
            for method, path, body in [("GET", "", None), ("GET", "/history", None), ("GET", "/events", None),
                                       ("PATCH", "", {"title": "mine now"}), ("DELETE", "", None)]:
                response = httpx.request(method, f"{url}/{sid}{path}", json=body, headers=headers, timeout=10)
                out.append((response.status_code, response.json()))
            return out

        foreign, unknown = answers(session_id), answers("s-does-not-exist")
        assert foreign == unknown and all(status == 404 for status, _ in foreign)
        assert foreign[0][1] == {"error": "Session not found"}
        assert session_id not in [s.session_id for s in b.list_sessions(limit=100)[0]]
        assert a.get_session(session_id).title is None  # B's attempts changed nothing
        for path in ("", f"/{session_id}", f"/{session_id}/history"):
            assert httpx.get(url + path, timeout=10).status_code == 401, path
    finally:
        a.close()
        b.close()


def test_metadata_written_by_another_pod_is_indexed_from_the_topic(stack: Stack, client: ShannonClient) -> None:
    # What a PATCH on another pod leaves behind is only the record on the sessions topic: the indexer
    # must bring it into the store (and a tombstone must take it out again).
    session_id, _ = _session(client, QUERIES[:1])
    meta = SessionMeta(tenant="default", session_id=session_id, title="From another pod")

    async def produce(value: bytes | None) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(f"{stack.prefix}.sessions", value, key=session_key("default", session_id))
        finally:
            await producer.stop()

    asyncio.run(produce(encode(meta)))
    eventually(lambda: client.get_session(session_id).title == "From another pod", 15, "title indexed")
    asyncio.run(produce(None))
    eventually(lambda: client.get_session(session_id).title is None, 15, "tombstone indexed")
