"""A task's events → an OpenAI chat completion: streamed chunks, or one completion at the end.

- LLM_PARTIAL of the call that writes the task's answer (payload ``final``) → a content delta.
- WORKFLOW_COMPLETED → the final answer (``payload.result``); sent as content deltas too when no
  answering call streamed it (scenarios whose answer is composed, not generated).
- WORKFLOW_FAILED / WORKFLOW_CANCELLED → an ``[Error: …]`` content delta in a stream; an error
  answer otherwise.
- LLM_OUTPUT → usage (summed over every LLM call of the task).
- STREAM_END → a last chunk with ``finish_reason: "stop"``, the usage chunk when asked
  (``stream_options.include_usage``), then the caller writes ``data: [DONE]``.
- With ``shannon_options.include_events`` the agent events ride along as ``shannon_events`` (the
  Shannon SDK's extension), each in a chunk with an empty delta.

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

ANSWER_PIECE = 100  # characters per delta when a finished answer is sent in pieces

AGENT_EVENTS = frozenset({
    "WORKFLOW_STARTED", "AGENT_STARTED", "AGENT_COMPLETED", "AGENT_THINKING", "TOOL_INVOKED", "TOOL_OBSERVATION",
    "PROGRESS", "DATA_PROCESSING", "WAITING", "ERROR_RECOVERY", "TEAM_RECRUITED", "TEAM_RETIRED", "TEAM_STATUS",
    "ROLE_ASSIGNED", "DELEGATION", "DEPENDENCY_SATISFIED", "BUDGET_THRESHOLD", "APPROVAL_REQUESTED",
    "APPROVAL_DECISION", "WORKFLOW_PAUSING", "WORKFLOW_PAUSED", "WORKFLOW_RESUMED", "WORKFLOW_CANCELLING",
    "WORKFLOW_CANCELLED", "MESSAGE_SENT", "MESSAGE_RECEIVED", "TASKLIST_UPDATED", "LEAD_DECISION",
})


class ChatReply:
    def __init__(self, model: str, created: int, *, include_usage: bool = False,
                 include_events: bool = False) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.include_events = include_events
        self.answer = ""
        self.error: str | None = None
        self.ended = False
        self._streamed: list[str] = []
        self._role_sent = False
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

    def on_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event adds to a stream (the completion is built from the same state)."""
        kind = event["type"]
        payload = event.get("payload") or {}
        chunks: list[dict[str, Any]] = []
        if self.include_events and kind in AGENT_EVENTS:
            chunks.append(self._chunk({}, events=[_shannon_event(event)]))
        if kind == "LLM_PARTIAL" and payload.get("final") is True and event.get("message"):
            self._streamed.append(str(event["message"]))
            chunks.append(self._content(str(event["message"])))
        elif kind == "LLM_OUTPUT":
            self._count(payload)
        elif kind == "WORKFLOW_COMPLETED":
            self.answer = str(payload.get("result") or event.get("message") or "")
            if not self._streamed:
                chunks += [self._content(self.answer[i: i + ANSWER_PIECE])
                           for i in range(0, len(self.answer), ANSWER_PIECE)]
        elif kind in ("WORKFLOW_FAILED", "WORKFLOW_CANCELLED"):
            self.error = str(payload.get("error") or event.get("message") or kind)
            chunks.append(self._content(("\n\n" if self._streamed else "") + f"[Error: {self.error}]"))
        elif kind == "STREAM_END":
            self.ended = True
        return chunks

    def closing(self) -> list[dict[str, Any]]:
        """The last chunks of a stream: ``finish_reason``, then the usage if asked for."""
        last = self._chunk({}, finish_reason="stop")
        if not self.include_usage:
            return [last]
        return [last, {**self._chunk({}), "choices": [], "usage": dict(self._usage)}]

    def completion(self) -> dict[str, Any]:
        """The whole reply of a non-streamed completion."""
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": dict(self._usage),
        }

    def _content(self, text: str) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": text}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        return self._chunk(delta)

    def _chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None,
               events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if events:
            chunk["shannon_events"] = events
        return chunk

    def _count(self, usage: dict[str, Any]) -> None:
        prompt, completion = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        self._usage["prompt_tokens"] += prompt
        self._usage["completion_tokens"] += completion
        self._usage["total_tokens"] += _int(usage.get("tokens_used")) or prompt + completion


def _shannon_event(event: dict[str, Any]) -> dict[str, Any]:
    moment = event.get("timestamp")
    out: dict[str, Any] = {"type": event["type"], "agent_id": event.get("agent_id"), "message": event.get("message"),
                           "timestamp": int(moment.timestamp()) if isinstance(moment, datetime) else None,
                           "payload": event.get("payload") or {}}
    return {k: v for k, v in out.items() if v is not None}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
