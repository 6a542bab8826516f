"""The grammar of every scenario, checked on the step lists (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from agentwire.runner.scenarios import steps_for
from agentwire.runner.script import Options, Step, rng_for
from agentwire.schema import TERMINAL_TYPES, TaskSubmitted

TEAM_TYPES = {"TEAM_RECRUITED", "TEAM_RETIRED"}
P2P_TYPES = {"MESSAGE_SENT", "MESSAGE_RECEIVED", "WORKSPACE_UPDATED"}


def task(mode: str = "standard", workflow_id: str = "task-1", **context: Any) -> TaskSubmitted:
    return TaskSubmitted(workflow_id=workflow_id, tenant="t", query="Research AI trends", session_id="s",
                         mode=mode, context=context)


def play(t: TaskSubmitted) -> list[Step]:
    return steps_for(t, Options.from_task(t, 1.0), rng_for(t))


def check_grammar(steps: list[Step]) -> None:
    types = [s.type for s in steps]
    assert types[0] == "WORKFLOW_STARTED"
    assert types[-1] in TERMINAL_TYPES
    assert sum(t in TERMINAL_TYPES for t in types) == 1
    assert "STREAM_END" not in types  # the processor adds it
    started: set[str] = set()
    for s in steps:
        if s.type == "AGENT_STARTED":
            assert s.agent_id not in started
            started.add(str(s.agent_id))
        elif s.type == "AGENT_COMPLETED":
            assert s.agent_id in started
            started.remove(str(s.agent_id))
    assert not started, f"agents never completed: {started}"
    plan = next(s for s in steps if s.name == "plan")
    assert plan.payload is not None and plan.payload["total"] == types.count("AGENT_COMPLETED")
    for s in steps:
        if s.type == "LLM_OUTPUT":
            assert s.payload is not None
            assert set(s.payload) >= {"tokens_used", "input_tokens", "output_tokens", "cost_usd",
                                      "model_used", "provider"}
    # every LLM call streams chunks before its output
    for i, s in enumerate(steps):
        if s.type == "LLM_OUTPUT":
            before = [p for p in steps[:i] if p.agent_id == s.agent_id]
            assert before and before[-1].type == "LLM_PARTIAL"


MODES = ["simple", "standard", "complex", "supervisor"]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_follows_the_grammar(mode: str) -> None:
    check_grammar(play(task(mode)))


@pytest.mark.parametrize("mode", MODES)
def test_scenarios_are_deterministic_per_task(mode: str) -> None:
    assert play(task(mode)) == play(task(mode))
    names = [s.name for s in play(task(mode))]
    assert len(names) == len(play(task(mode, workflow_id="task-2")))
    assert names  # same structure, possibly different interleaving


def test_complex_has_parallel_agents_with_delegation() -> None:
    steps = play(task("complex"))
    types = [s.type for s in steps]
    assert {"DELEGATION", "ROLE_ASSIGNED", "DEPENDENCY_SATISFIED", "TOOL_INVOKED", "TOOL_OBSERVATION"} <= set(types)
    # parallel: some agent starts before another one completes
    first_done = types.index("AGENT_COMPLETED")
    assert types[:first_done].count("AGENT_STARTED") >= 2
    # the synthesizer's dependency is satisfied only after all workers are done
    dep = types.index("DEPENDENCY_SATISFIED")
    assert types[:dep].count("AGENT_COMPLETED") == 3
    # interleaving differs between tasks but is seeded
    orders = {tuple(s.name for s in play(task("complex", workflow_id=f"task-{i}"))) for i in range(8)}
    assert len(orders) > 1


def test_every_agent_prompt_is_its_own() -> None:
    for mode in MODES:
        prompts = [s.message for s in play(task(mode)) if s.type == "LLM_PROMPT"]
        assert len(prompts) == len(set(prompts)), mode
    standard = [s.message for s in play(task()) if s.type == "LLM_PROMPT"]
    assert sum("Searching for information" in str(p) for p in standard) == 1


def test_supervisor_gates() -> None:
    off = {s.type for s in play(task("supervisor"))}
    assert not off & (TEAM_TYPES | P2P_TYPES)
    team = {s.type for s in play(task("supervisor", features=["dynamic_team_v1"]))}
    assert TEAM_TYPES <= team and not team & P2P_TYPES
    p2p = play(task("supervisor", features=["p2p_v1"]))
    assert P2P_TYPES <= {s.type for s in p2p} and not {s.type for s in p2p} & TEAM_TYPES
    types = [s.type for s in p2p]
    assert types.index("MESSAGE_SENT") < types.index("MESSAGE_RECEIVED")
    both = play(task("supervisor", features=["dynamic_team_v1", "p2p_v1"]))
    check_grammar(both)
    assert (TEAM_TYPES | P2P_TYPES) <= {s.type for s in both}


@pytest.mark.parametrize("mode", MODES)
def test_force_swarm_runs_a_task_board(mode: str) -> None:
    steps = play(task(mode, force_swarm=True))
    check_grammar(steps)
    boards = [s.payload["tasks"] for s in steps if s.type == "TASKLIST_UPDATED" and s.payload]
    assert boards[0] and all(t["status"] == "pending" for t in boards[0])
    assert all(t["status"] == "done" and t["assignee"] for t in boards[-1])
    decisions = [s for s in steps if s.type == "LEAD_DECISION"]
    assert len(decisions) == 2


def test_require_approval_inserts_a_gate_after_the_plan() -> None:
    steps = play(task("standard", require_approval=True, approval_timeout_s=30))
    check_grammar(steps)
    types = [s.type for s in steps]
    at = types.index("APPROVAL_REQUESTED")
    assert steps[at - 1].name == "plan"
    request, gate = steps[at], steps[at + 1]
    assert request.payload is not None and request.payload["timeout_s"] == 30.0
    assert request.payload["approval_id"].startswith("approval-") and request.payload["what"] == "plan"
    assert gate.gate == "approval" and gate.payload == {"approval_id": request.payload["approval_id"]}
    assert types.index("AGENT_STARTED") > at + 1
    # The same task always asks for the same approval; another task for another one.
    assert play(task("standard", require_approval=True))[at].payload["approval_id"] == request.payload["approval_id"]
    other = play(task("standard", workflow_id="task-2", require_approval=True))[at]
    assert other.payload is not None and other.payload["approval_id"] != request.payload["approval_id"]


def test_auto_approve_keeps_the_demo_decision() -> None:
    steps = play(task("standard", require_approval=True, auto_approve=True, approval_wait_s=2))
    types = [s.type for s in steps]
    decision = steps[types.index("APPROVAL_REQUESTED") + 1]
    assert decision.type == "APPROVAL_DECISION" and decision.gate is None and decision.delay == 2.0
    assert decision.payload is not None and decision.payload["approved"] is True
    assert decision.payload["decided_by"] == "auto-approver"


def test_options_from_context() -> None:
    t = task(speed=4, chunk_words=1, output_tokens=50, fail_at="x", stall_at="y", tool_error=True,
             features=["p2p_v1"], force_swarm=True, token_budget=1000)
    options = Options.from_task(t, 1.0)
    assert (options.speed, options.chunk_words, options.output_tokens) == (4.0, 1, 50)
    assert (options.fail_at, options.stall_at, options.tool_error) == ("x", "y", True)
    assert options.features == frozenset({"p2p_v1"}) and options.force_swarm and options.token_budget == 1000
    assert Options.from_task(t, 1.0, 42.0).approval_timeout_s == 42.0
    assert Options.from_task(task(approval_timeout_s=5), 1.0, 42.0).approval_timeout_s == 5.0
    bad = Options.from_task(task(speed="fast", chunk_words=-3, features="p2p_v1", token_budget=True), 1.0)
    assert bad.speed == 1.0 and bad.chunk_words == 1 and bad.features == frozenset() and bad.token_budget is None


def test_chunk_words_and_output_tokens_shape_llm_calls() -> None:
    steps = play(task("simple", chunk_words=1, output_tokens=77))
    partials = [s.message for s in steps if s.type == "LLM_PARTIAL"]
    output = next(s for s in steps if s.type == "LLM_OUTPUT")
    assert "".join(str(p) for p in partials) == output.message
    assert all(len(str(p).split()) == 1 for p in partials)
    assert output.payload is not None and output.payload["output_tokens"] == 77


def test_tool_error_adds_a_retry() -> None:
    types = [s.type for s in play(task(tool_error=True))]
    assert types.count("TOOL_ERROR") == 3 and types.count("ERROR_RECOVERY") == 3
    assert types.count("TOOL_INVOKED") == 6
