"""Scenarios by mode: which agents run, what they say, which tools they call."""

from __future__ import annotations

import random
from collections.abc import Callable

from agentwire.runner.script import Options, Step
from agentwire.schema import EventType as T
from agentwire.schema import TaskSubmitted

MODEL = "agentwire-stub-1"
PROVIDER = "agentwire"

Scenario = Callable[[TaskSubmitted, Options, random.Random], list[Step]]


def llm_steps(agent: str, prompt: str, text: str, options: Options, rng: random.Random) -> list[Step]:
    """An LLM call: the prompt, the text in LLM_PARTIAL chunks, LLM_OUTPUT with usage."""
    words = text.split(" ")
    chunks = [" ".join(words[i : i + options.chunk_words]) for i in range(0, len(words), options.chunk_words)]
    steps = [Step(T.LLM_PROMPT, f"{agent}:prompt", agent, prompt, delay=0.05)]
    for index, chunk in enumerate(chunks):
        text_chunk = chunk if index == len(chunks) - 1 else chunk + " "
        steps.append(Step(T.LLM_PARTIAL, f"{agent}:chunk", agent, text_chunk, delay=0.03))
    input_tokens = rng.randint(200, 600)
    output_tokens = options.output_tokens or max(len(words) * 4 // 3, 1)
    usage = {
        "tokens_used": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": round((input_tokens * 0.5 + output_tokens * 1.5) / 1_000_000, 8),
        "model_used": MODEL,
        "provider": PROVIDER,
    }
    steps.append(Step(T.LLM_OUTPUT, f"{agent}:output", agent, text, payload=usage, delay=0.02))
    return steps


def tool_steps(agent: str, tool: str, argument: str, result: str, options: Options) -> list[Step]:
    steps = [Step(T.TOOL_INVOKED, f"{agent}:tool", agent, f"Calling {tool} with query='{argument}'",
                  payload={"tool": tool, "arguments": {"query": argument}}, delay=0.1)]
    if options.tool_error:
        steps.append(Step(T.TOOL_ERROR, f"{agent}:tool-error", agent, f"{tool} failed: upstream timeout",
                          payload={"tool": tool}, delay=0.1))
        steps.append(Step(T.ERROR_RECOVERY, f"{agent}:recovery", agent, f"Retrying {tool}", delay=0.05))
        steps.append(Step(T.TOOL_INVOKED, f"{agent}:tool-retry", agent, f"Calling {tool} with query='{argument}'",
                          payload={"tool": tool, "arguments": {"query": argument}}, delay=0.1))
    steps.append(Step(T.TOOL_OBSERVATION, f"{agent}:observation", agent, result, payload={"tool": tool}, delay=0.2))
    return steps


def standard(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """Planner, then research, analysis and writer agents in sequence (the seed's example)."""
    topic = task.query.strip().rstrip("?.!")[:80]
    agents = [
        ("research-agent", "web_search", f"Research complete: Found relevant information on {topic}"),
        ("analysis-agent", "calculator", f"Analysis complete: the key trends in {topic} are consistent"),
        ("writer-agent", "document_writer", f"Summary written: {topic} explained in three sections"),
    ]
    steps = [
        Step(T.WORKFLOW_STARTED, "start", "orchestrator", "Task processing started", delay=0.05),
        Step(T.DATA_PROCESSING, "prepare", "orchestrator", "Preparing context", delay=0.1),
        Step(T.PROGRESS, "plan", "planner", f"Created a plan with {len(agents)} steps",
             payload={"completed": 0, "total": len(agents), "percent": 0,
                      "plan": [name for name, _, _ in agents]}, delay=0.2),
    ]
    for agent, tool, summary in agents:
        hits = rng.randint(3, 9)
        steps.append(Step(T.AGENT_STARTED, f"{agent}:start", agent, "Processing query", delay=0.1))
        steps.extend(llm_steps(agent, f"Searching for information about {topic}...",
                               f"Planning how to use {tool} for {topic}.", options, rng)[:1])
        steps.extend(tool_steps(agent, tool, topic, f"Found {hits} results", options))
        steps.extend(llm_steps(agent, f"Summarise the {tool} results", summary, options, rng)[1:])
        steps.append(Step(T.AGENT_COMPLETED, f"{agent}:done", agent, "Task done", delay=0.05))
    steps.append(Step(T.WORKFLOW_COMPLETED, "complete", "orchestrator", "Final synthesized result ready",
                      payload={"result": final_result(task)}, delay=0.1))
    return steps


def simple(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """One agent answers directly."""
    answer = f"Answer: {task.query.strip()[:200]} (answered by the simple agent)"
    steps = [
        Step(T.WORKFLOW_STARTED, "start", "orchestrator", "Task processing started", delay=0.05),
        Step(T.PROGRESS, "plan", "planner", "Created a plan with 1 steps",
             payload={"completed": 0, "total": 1, "percent": 0, "plan": ["simple-agent"]}, delay=0.05),
        Step(T.AGENT_STARTED, "simple-agent:start", "simple-agent", "Processing query", delay=0.05),
    ]
    steps.extend(llm_steps("simple-agent", task.query[:500], answer, options, rng))
    steps.append(Step(T.AGENT_COMPLETED, "simple-agent:done", "simple-agent", "Task done", delay=0.05))
    steps.append(Step(T.WORKFLOW_COMPLETED, "complete", "orchestrator", "All done",
                      payload={"result": answer}, delay=0.05))
    return steps


def final_result(task: TaskSubmitted) -> str:
    return (
        f"Summary of '{task.query.strip()[:200]}': research gathered sources, analysis found the main "
        "trends, and the writer produced a three-part summary."
    )


SCENARIOS: dict[str, Scenario] = {"standard": standard, "simple": simple}


def scenario_for(task: TaskSubmitted) -> Scenario:
    return SCENARIOS.get(task.mode, standard)
