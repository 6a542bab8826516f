"""Scenarios by mode: which agents run, what they say, which tools they call.

``scenario_for`` picks the scenario from the task's mode (``context.force_swarm``
wins); every scenario is deterministic for a task (its random generator is
seeded by the task). ``context.require_approval`` inserts a human-approval
exchange after the plan in any scenario: the player waits there for a decision
(``context.auto_approve`` approves by itself after ``approval_wait_s``, for demos).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agentwire.runner.blocks import (
    approval,
    closing,
    final_result,
    llm_answer,
    llm_prompt,
    llm_steps,
    opening,
    tool_steps,
    topic_of,
)
from agentwire.runner.script import Options, Step
from agentwire.runner.teams import complex_, supervisor, swarm
from agentwire.schema import EventType as T
from agentwire.schema import TaskSubmitted

Scenario = Callable[[TaskSubmitted, Options, random.Random], list[Step]]

# agent, tool, what it asks the LLM before the tool, what it concludes
STANDARD_AGENTS = [
    ("research-agent", "web_search", "Searching for information about {topic}...",
     "Research complete: Found relevant information on {topic}"),
    ("analysis-agent", "calculator", "Analysing the figures gathered about {topic}...",
     "Analysis complete: the key trends in {topic} are consistent"),
    ("writer-agent", "document_writer", "Drafting a summary of {topic}...",
     "Summary written: {topic} explained in three sections"),
]


def standard(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """Planner, then research, analysis and writer agents in sequence (the seed's example)."""
    topic = topic_of(task)
    plan = [agent for agent, _, _, _ in STANDARD_AGENTS]
    steps = opening(plan)
    for agent, tool, prompt, summary in STANDARD_AGENTS:
        hits = rng.randint(3, 9)
        steps.append(Step(T.AGENT_STARTED, f"{agent}:start", agent, "Processing query", delay=0.1))
        steps.append(llm_prompt(agent, prompt.format(topic=topic)))
        steps.extend(tool_steps(agent, tool, topic, f"Found {hits} results", options))
        steps.extend(llm_answer(agent, summary.format(topic=topic), options, rng))
        steps.append(Step(T.AGENT_COMPLETED, f"{agent}:done", agent, "Task done", delay=0.05))
    steps.append(closing(final_result(task)))
    return steps


def simple(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """One agent answers directly."""
    answer = f"Answer: {task.query.strip()[:200]} (answered by the simple agent)"
    steps = opening(["simple-agent"], preparing=False)
    steps.append(Step(T.AGENT_STARTED, "simple-agent:start", "simple-agent", "Processing query", delay=0.05))
    steps.extend(llm_steps("simple-agent", task.query[:500], answer, options, rng, final=True))
    steps.append(Step(T.AGENT_COMPLETED, "simple-agent:done", "simple-agent", "Task done", delay=0.05))
    steps.append(closing(answer, "All done"))
    return steps


SCENARIOS: dict[str, Scenario] = {
    "simple": simple,
    "standard": standard,
    "complex": complex_,
    "supervisor": supervisor,
    "swarm": swarm,
}


def scenario_for(task: TaskSubmitted) -> Scenario:
    """The scenario of a task: swarm if ``context.force_swarm``, else by mode (standard by default)."""
    base = swarm if task.context.get("force_swarm") is True else SCENARIOS.get(task.mode, standard)
    if task.context.get("require_approval") is True:
        return _with_approval(base)
    return base


def steps_for(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """The full, deterministic step list of a task."""
    return scenario_for(task)(task, options, rng)


def _with_approval(base: Scenario) -> Scenario:
    def scenario(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
        steps = base(task, options, rng)
        at = next(i for i, s in enumerate(steps) if s.name == "plan") + 1
        plan = (steps[at - 1].payload or {}).get("plan", [])
        return steps[:at] + approval(task, plan, options) + steps[at:]

    return scenario
