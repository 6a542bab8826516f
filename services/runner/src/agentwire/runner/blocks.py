"""Reusable pieces of a scenario: an LLM call, a tool call, the opening and closing steps."""

from __future__ import annotations

import hashlib
import random

from agentwire.runner.script import Options, Step
from agentwire.schema import EventType as T
from agentwire.schema import TaskSubmitted

MODEL = "agentwire-stub-1"
PROVIDER = "agentwire"


def topic_of(task: TaskSubmitted) -> str:
    return task.query.strip().rstrip("?.!")[:80]


def llm_steps(agent: str, prompt: str, text: str, options: Options, rng: random.Random,
              *, tag: str = "llm", final: bool = False) -> list[Step]:
    """An LLM call: the prompt, the text in LLM_PARTIAL chunks, LLM_OUTPUT with usage."""
    return [llm_prompt(agent, prompt, tag=tag), *llm_answer(agent, text, options, rng, tag=tag, final=final)]


def llm_prompt(agent: str, prompt: str, *, tag: str = "llm") -> Step:
    return Step(T.LLM_PROMPT, f"{agent}:{tag}:prompt", agent, prompt, delay=0.05)


def llm_answer(agent: str, text: str, options: Options, rng: random.Random, *, tag: str = "llm",
               final: bool = False) -> list[Step]:
    """The streamed half of an LLM call: LLM_PARTIAL chunks, then LLM_OUTPUT with usage.

    ``final`` marks the call that writes the task's answer (payload ``{"final": true}`` on its
    chunks and output), so that the OpenAI-compatible API streams those chunks as the reply.
    """
    words = text.split(" ")
    size = options.chunk_words
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    mark = {"final": True} if final else None
    steps = [
        Step(T.LLM_PARTIAL, f"{agent}:{tag}:chunk", agent, chunk if i == len(chunks) - 1 else chunk + " ",
             payload=mark, delay=0.03)
        for i, chunk in enumerate(chunks)
    ]
    input_tokens = rng.randint(200, 600)
    output_tokens = options.output_tokens or max(len(words) * 4 // 3, 1)
    usage = {
        "tokens_used": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": round((input_tokens * 0.5 + output_tokens * 1.5) / 1_000_000, 8),
        "model_used": MODEL,
        "provider": PROVIDER,
        **(mark or {}),
    }
    steps.append(Step(T.LLM_OUTPUT, f"{agent}:{tag}:output", agent, text, payload=usage, delay=0.02))
    return steps


def tool_steps(agent: str, tool: str, argument: str, result: str, options: Options) -> list[Step]:
    """A tool call; with ``tool_error`` the first attempt fails and is retried."""
    call = {"tool": tool, "arguments": {"query": argument}}
    steps = [Step(T.TOOL_INVOKED, f"{agent}:tool", agent, f"Calling {tool} with query='{argument}'",
                  payload=call, delay=0.1)]
    if options.tool_error:
        steps.append(Step(T.TOOL_ERROR, f"{agent}:tool-error", agent, f"{tool} failed: upstream timeout",
                          payload={"tool": tool}, delay=0.1))
        steps.append(Step(T.ERROR_RECOVERY, f"{agent}:recovery", agent, f"Retrying {tool}", delay=0.05))
        steps.append(Step(T.TOOL_INVOKED, f"{agent}:tool-retry", agent, f"Calling {tool} with query='{argument}'",
                          payload=call, delay=0.1))
    steps.append(Step(T.TOOL_OBSERVATION, f"{agent}:observation", agent, result, payload={"tool": tool},
                      delay=0.2))
    return steps


def opening(plan: list[str], *, preparing: bool = True) -> list[Step]:
    """WORKFLOW_STARTED, optional DATA_PROCESSING, and the plan as a PROGRESS 0/total."""
    steps = [Step(T.WORKFLOW_STARTED, "start", "orchestrator", "Task processing started", delay=0.05)]
    if preparing:
        steps.append(Step(T.DATA_PROCESSING, "prepare", "orchestrator", "Preparing context", delay=0.1))
    steps.append(Step(T.PROGRESS, "plan", "planner", f"Created a plan with {len(plan)} steps",
                      payload={"completed": 0, "total": len(plan), "percent": 0, "plan": plan}, delay=0.2))
    return steps


def closing(result: str, message: str = "Final synthesized result ready") -> Step:
    return Step(T.WORKFLOW_COMPLETED, "complete", "orchestrator", message, payload={"result": result}, delay=0.1)


def approval(task: TaskSubmitted, plan: list[str], options: Options) -> list[Step]:
    """Human approval of the plan: APPROVAL_REQUESTED, then a gate where the player waits for the decision.

    With ``context.auto_approve`` (demos) the plan is approved by ``auto-approver`` after
    ``approval_wait_s`` seconds (at speed 1) instead. The approval id is derived from the workflow,
    so a replayed play asks for the same approval.
    """
    approval_id = "approval-" + hashlib.sha256(f"{task.workflow_id}:plan".encode()).hexdigest()[:16]
    request = Step(T.APPROVAL_REQUESTED, "approval:request", "orchestrator", "Approval requested for the plan",
                   payload={"approval_id": approval_id, "workflow_id": task.workflow_id, "what": "plan",
                            "plan": plan, "timeout_s": options.approval_timeout_s}, delay=0.05)
    if options.auto_approve:
        decision = Step(T.APPROVAL_DECISION, "approval:decision", "orchestrator", "Plan approved",
                        payload={"approval_id": approval_id, "approved": True, "decided_by": "auto-approver",
                                 "feedback": ""}, delay=options.approval_wait_s)
    else:
        decision = Step(T.APPROVAL_DECISION, "approval:decision", "orchestrator", None,
                        payload={"approval_id": approval_id}, gate="approval")
    return [request, decision]


def final_result(task: TaskSubmitted) -> str:
    return (
        f"Summary of '{task.query.strip()[:200]}': research gathered sources, analysis found the main "
        "trends, and the writer produced a three-part summary."
    )
