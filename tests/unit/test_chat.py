"""The OpenAI-compatible API's pure parts: request → task, events → chunks and completion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentwire.ingest.chat.models import MODELS, ChatCompletionRequest, NoUserMessage, to_task
from agentwire.ingest.chat.replies import ChatReply

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ev(kind: str, message: str | None = None, agent: str = "simple-agent", **payload: Any) -> dict[str, Any]:
    return {"type": kind, "agent_id": agent, "message": message, "payload": payload or None, "timestamp": NOW}


USAGE = {"tokens_used": 30, "input_tokens": 20, "output_tokens": 10}


def test_the_last_user_message_is_the_query_and_the_rest_context() -> None:
    request = ChatCompletionRequest.model_validate({
        "model": "agentwire-swarm", "user": "u1", "max_tokens": 50, "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": [{"type": "text", "text": "Research "},
                                                  {"type": "text", "text": "AI"}]}],
        "shannon_options": {"context": {"speed": 4}},
    })
    task = to_task(request, MODELS["agentwire-swarm"], None)
    assert task.query == "Research AI" and task.mode == "standard"
    assert task.context["force_swarm"] is True and task.context["speed"] == 4
    assert task.context["system_prompt"] == "Be brief" and task.context["max_tokens"] == 50
    assert task.context["conversation_history"] == [{"role": "user", "content": "Hi"},
                                                    {"role": "assistant", "content": "Hello"}]
    assert task.session_id is not None and task.session_id.startswith("openai-")
    assert to_task(request, MODELS["agentwire-swarm"], "my-session").session_id == "my-session"
    # The same conversation keeps its session across turns.
    again = request.model_copy(update={"messages": request.messages[:2]})
    assert to_task(again, MODELS["agentwire-chat"], None).session_id == task.session_id
    with pytest.raises(NoUserMessage):
        to_task(ChatCompletionRequest.model_validate({"messages": [{"role": "system", "content": "x"}]}),
                MODELS["agentwire-chat"], None)


def test_final_partials_stream_as_deltas_then_stop_and_usage() -> None:
    reply = ChatReply("agentwire-chat", 1, include_usage=True)
    assert reply.on_event(ev("WORKFLOW_STARTED", "started", "orchestrator")) == []
    assert reply.on_event(ev("LLM_PARTIAL", "not the ", "research-agent")) == []  # not the answering call
    first = reply.on_event(ev("LLM_PARTIAL", "The ", final=True))
    second = reply.on_event(ev("LLM_PARTIAL", "answer", final=True))
    assert first[0]["choices"][0]["delta"] == {"content": "The ", "role": "assistant"}
    assert second[0]["choices"][0]["delta"] == {"content": "answer"}
    assert first[0]["object"] == "chat.completion.chunk" and first[0]["id"] == second[0]["id"]
    reply.on_event(ev("LLM_OUTPUT", "The answer", **USAGE, final=True))
    reply.on_event(ev("LLM_OUTPUT", "other", "research-agent", **USAGE))
    assert reply.on_event(ev("WORKFLOW_COMPLETED", "All done", "orchestrator", result="The answer")) == []
    reply.on_event(ev("STREAM_END", agent="orchestrator"))
    assert reply.ended
    stop, usage = reply.closing()
    assert stop["choices"][0]["finish_reason"] == "stop" and stop["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 40, "completion_tokens": 20,
                                                          "total_tokens": 60}
    completion = reply.completion()
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "The answer"}


def test_a_composed_answer_is_sent_in_pieces_and_errors_show_up() -> None:
    reply = ChatReply("agentwire-research", 1)
    answer = "x" * 250
    chunks = reply.on_event(ev("WORKFLOW_COMPLETED", "done", "orchestrator", result=answer))
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == answer and len(chunks) == 3
    assert reply.closing()[-1]["choices"][0]["finish_reason"] == "stop" and len(reply.closing()) == 1

    failed = ChatReply("agentwire-chat", 1)
    [chunk] = failed.on_event(ev("WORKFLOW_FAILED", "boom", "orchestrator", error="Token budget exceeded"))
    assert chunk["choices"][0]["delta"]["content"] == "[Error: Token budget exceeded]"
    assert failed.error == "Token budget exceeded"


def test_agent_events_ride_along_only_when_asked() -> None:
    quiet, chatty = ChatReply("m", 1), ChatReply("m", 1, include_events=True)
    event = ev("AGENT_STARTED", "Processing query", step="x")
    assert quiet.on_event(event) == []
    [chunk] = chatty.on_event(event)
    assert chunk["choices"][0]["delta"] == {}
    assert chunk["shannon_events"] == [{"type": "AGENT_STARTED", "agent_id": "simple-agent",
                                        "message": "Processing query", "timestamp": int(NOW.timestamp()),
                                        "payload": {"step": "x"}}]
