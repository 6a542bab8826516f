"""Requests of the OpenAI-compatible API, the models it offers, and how a request becomes a task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentwire.ingest.requests import Mode, SubmitTask

CREATED = 1_764_547_200  # 2025-12-01, when these models were defined


@dataclass(frozen=True)
class Model:
    id: str
    mode: Mode
    description: str
    context: dict[str, Any] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": CREATED, "owned_by": "agentwire"}


MODELS: dict[str, Model] = {m.id: m for m in (
    Model("agentwire-chat", Mode.SIMPLE, "One agent answers directly"),
    Model("agentwire-research", Mode.STANDARD, "A planner, then research, analysis and writer agents"),
    Model("agentwire-complex", Mode.COMPLEX, "Parallel agents and a synthesis"),
    Model("agentwire-supervisor", Mode.SUPERVISOR, "A supervisor and its team"),
    Model("agentwire-swarm", Mode.STANDARD, "A swarm working a task board", {"force_swarm": True}),
)}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=256)

    @property
    def text(self) -> str:
        """The message's text (the text parts of a multi-part content)."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ShannonOptions(BaseModel):
    """The Shannon SDK's extension: task context, and whether chunks carry the agent events."""

    model_config = ConfigDict(extra="ignore")

    context: dict[str, Any] = Field(default_factory=dict)
    include_events: bool = False


class ChatCompletionRequest(BaseModel):
    """Body of POST /v1/chat/completions (OpenAI's fields; sampling parameters are accepted and recorded)."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    model: str | None = Field(None, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    user: str | None = Field(None, max_length=256)
    shannon_options: ShannonOptions | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def include_events(self) -> bool:
        return self.shannon_options is not None and self.shannon_options.include_events


class NoUserMessage(ValueError):
    """The request has no user message with text."""


def to_task(request: ChatCompletionRequest, model: Model, session_id: str | None) -> SubmitTask:
    """The task a chat completion runs: the last user message is the query, the rest is context."""
    users = [i for i, m in enumerate(request.messages) if m.role == "user" and m.text.strip()]
    if not users:
        raise NoUserMessage("no user message with text in messages")
    last = users[-1]
    context: dict[str, Any] = {**model.context, **(request.shannon_options.context if request.shannon_options else {}),
                               "openai_model": model.id}
    system = next((m.text for m in request.messages if m.role in ("system", "developer")), "")
    if system:
        context["system_prompt"] = system
    history = [{"role": m.role, "content": m.text} for i, m in enumerate(request.messages)
               if i != last and m.role not in ("system", "developer")]
    if history:
        context["conversation_history"] = history
    sampling = {"max_tokens": request.max_completion_tokens or request.max_tokens, "temperature": request.temperature,
                "top_p": request.top_p, "stop": request.stop, "openai_user": request.user}
    context.update({k: v for k, v in sampling.items() if v is not None})
    return SubmitTask(query=request.messages[last].text, session_id=session_id or derive_session(request),
                      context=context, mode=model.mode)


def derive_session(request: ChatCompletionRequest) -> str:
    """A stable session for a conversation: from ``user``, else from its opening messages."""
    if request.user:
        return "openai-" + hashlib.sha256(request.user.encode()).hexdigest()[:16]
    system = next((m.text for m in request.messages if m.role in ("system", "developer")), "")
    first = next((m.text for m in request.messages if m.role == "user"), "")
    return "openai-" + hashlib.sha256(f"{system}\x00{first[:200]}".encode()).hexdigest()[:16]
