"""The building blocks of a scenario: steps, and the options a task's context sets.

A scenario is a deterministic list of Steps for a task; the player paces them,
honours control commands at each step boundary (a checkpoint) and emits them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from agentwire.schema import TaskSubmitted


@dataclass(frozen=True)
class Step:
    type: str
    name: str
    agent_id: str | None = None
    message: str | None = None
    payload: dict[str, Any] | None = None
    delay: float = 0.0  # seconds before the step at speed 1
    gate: str | None = None  # "approval": the player waits for a decision here instead of emitting as is


@dataclass(frozen=True)
class Options:
    """Pacing and failure injection, from the task's ``context`` (all optional)."""

    speed: float = 1.0
    chunk_words: int = 3
    fail_at: str | None = None
    stall_at: str | None = None
    tool_error: bool = False
    features: frozenset[str] = field(default_factory=frozenset)
    output_tokens: int | None = None
    force_swarm: bool = False
    require_approval: bool = False
    auto_approve: bool = False
    approval_wait_s: float = 1.0
    approval_timeout_s: float = 600.0
    token_budget: int | None = None

    @classmethod
    def from_task(cls, task: TaskSubmitted, default_speed: float,
                  default_approval_timeout_s: float = 600.0) -> Options:
        ctx = task.context
        speed = _number(ctx.get("speed"), default_speed, low=0.01, high=10_000.0)
        features = ctx.get("features") or []
        return cls(
            speed=speed,
            chunk_words=int(_number(ctx.get("chunk_words"), 3, low=1, high=1000)),
            fail_at=_text(ctx.get("fail_at")),
            stall_at=_text(ctx.get("stall_at")),
            tool_error=bool(ctx.get("tool_error", False)),
            features=frozenset(str(f) for f in features) if isinstance(features, list) else frozenset(),
            output_tokens=int(_number(ctx["output_tokens"], 1, low=1, high=10_000_000))
            if "output_tokens" in ctx else None,
            force_swarm=ctx.get("force_swarm") is True,
            require_approval=ctx.get("require_approval") is True,
            auto_approve=ctx.get("auto_approve") is True,
            approval_wait_s=_number(ctx.get("approval_wait_s"), 1.0, low=0.0, high=3600.0),
            approval_timeout_s=_number(ctx.get("approval_timeout_s"), default_approval_timeout_s,
                                       low=0.1, high=7 * 24 * 3600.0),
            token_budget=int(ctx["token_budget"]) if _is_count(ctx.get("token_budget")) else None,
        )


    @property
    def waits_for_humans(self) -> bool:
        """Whether the play may wait for commands a crashed runner could have consumed (decisions, messages)."""
        return (self.require_approval and not self.auto_approve) or self.force_swarm


def rng_for(task: TaskSubmitted) -> random.Random:
    """A random generator seeded by the task, so a task always plays the same way."""
    seed = hashlib.sha256(f"{task.workflow_id}\x00{task.query}\x00{task.mode}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _number(value: Any, default: float, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(max(float(value), low), high)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
