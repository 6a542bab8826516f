"""Multi-agent scenarios: parallel agents (complex), a supervised team, a swarm with a task board.

Parallel agents' steps are interleaved by a schedule drawn from the task's seeded
random generator, so the interleaving differs between tasks but never between
plays of the same task (a replay emits the same event ids for the same steps).
"""

from __future__ import annotations

import random
from typing import Any

from agentwire.runner.blocks import (
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
from agentwire.schema import EventType as T
from agentwire.schema import TaskSubmitted

DYNAMIC_TEAM = "dynamic_team_v1"
P2P = "p2p_v1"


def interleave(lanes: list[list[Step]], rng: random.Random) -> list[Step]:
    """Merge parallel agents' step lists; each keeps its own order, the mix is seeded."""
    queues = [list(lane) for lane in lanes if lane]
    out: list[Step] = []
    while queues:
        lane = queues[rng.randrange(len(queues))]
        for _ in range(min(rng.randint(1, 3), len(lane))):
            out.append(lane.pop(0))
        queues = [q for q in queues if q]
    return out


def worker(agent: str, role: str, tool: str, topic: str, options: Options, rng: random.Random) -> list[Step]:
    """One agent's work: start, think, call a tool, answer, complete."""
    hits = rng.randint(2, 12)
    steps = [Step(T.AGENT_STARTED, f"{agent}:start", agent, f"{role} started", delay=0.1),
             llm_prompt(agent, f"As the {role}, decide how to use {tool} for {topic}")]
    steps.extend(tool_steps(agent, tool, topic, f"{tool} returned {hits} items", options))
    steps.extend(llm_answer(agent, f"{role} finished: {hits} findings about {topic}", options, rng))
    steps.append(Step(T.AGENT_COMPLETED, f"{agent}:done", agent, f"{role} done", delay=0.05))
    return steps


COMPLEX_AGENTS = [
    ("market-agent", "market researcher", "web_search"),
    ("data-agent", "data analyst", "calculator"),
    ("risk-agent", "risk assessor", "code_executor"),
]


def complex_(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """A planner delegates to three parallel agents; a synthesizer waits on all of them."""
    topic = topic_of(task)
    plan = [agent for agent, _, _ in COMPLEX_AGENTS] + ["synthesis-agent"]
    steps = opening(plan)
    steps.extend(llm_steps("planner", f"Break down '{topic}' into parallel subtasks",
                           f"Plan: {len(COMPLEX_AGENTS)} parallel subtasks and one synthesis", options, rng,
                           tag="plan"))
    for agent, role, _ in COMPLEX_AGENTS:
        steps.append(Step(T.DELEGATION, f"{agent}:delegate", "planner", f"Delegating {role} work to {agent}",
                          payload={"from": "planner", "to": agent, "subtask": f"{role}: {topic}"}, delay=0.02))
        steps.append(Step(T.ROLE_ASSIGNED, f"{agent}:role", agent, f"Assigned role: {role}",
                          payload={"agent_id": agent, "role": role}, delay=0.02))
    steps.extend(interleave([worker(a, r, t, topic, options, rng) for a, r, t in COMPLEX_AGENTS], rng))
    steps.append(Step(T.DEPENDENCY_SATISFIED, "synthesis-agent:ready", "synthesis-agent",
                      "All inputs ready for synthesis",
                      payload={"depends_on": [a for a, _, _ in COMPLEX_AGENTS]}, delay=0.05))
    steps.append(Step(T.AGENT_STARTED, "synthesis-agent:start", "synthesis-agent", "Synthesizing", delay=0.05))
    steps.extend(llm_steps("synthesis-agent", f"Combine the findings about {topic}", final_result(task),
                           options, rng, final=True))
    steps.append(Step(T.AGENT_COMPLETED, "synthesis-agent:done", "synthesis-agent", "Synthesis done", delay=0.05))
    steps.append(closing(final_result(task)))
    return steps


TEAM = [("scout-agent", "scout", "web_search"), ("critic-agent", "critic", "fact_checker")]


def supervisor(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """A supervisor runs a team; team events need ``dynamic_team_v1``, messages need ``p2p_v1``."""
    topic = topic_of(task)
    team_on, p2p_on = DYNAMIC_TEAM in options.features, P2P in options.features
    plan = [agent for agent, _, _ in TEAM]
    steps = opening(plan)
    steps.append(Step(T.TEAM_STATUS, "team:status", "supervisor", f"Team of {len(TEAM)} agents",
                      payload={"members": plan}, delay=0.05))
    if team_on:
        for agent, role, _ in TEAM:
            steps.append(Step(T.TEAM_RECRUITED, f"{agent}:recruit", "supervisor", f"Recruited {agent} as {role}",
                              payload={"agent_id": agent, "role": role}, delay=0.05))
    lanes = [worker(a, r, t, topic, options, rng) for a, r, t in TEAM]
    if p2p_on:
        scout, critic = TEAM[0][0], TEAM[1][0]
        note = f"Draft findings on {topic}"
        lanes[0][-1:-1] = [
            Step(T.WORKSPACE_UPDATED, f"{scout}:workspace", scout, "Shared notes updated",
                 payload={"key": "findings", "author": scout, "version": 1}, delay=0.03),
            Step(T.MESSAGE_SENT, f"{scout}:send", scout, note, payload={"from": scout, "to": critic}, delay=0.03),
        ]
        lanes[1][-1:-1] = [Step(T.MESSAGE_RECEIVED, f"{critic}:receive", critic, note,
                                payload={"from": scout, "to": critic}, delay=0.03)]
        steps.extend(lanes[0] + lanes[1])  # the message is received after it was sent
    else:
        steps.extend(interleave(lanes, rng))
    if team_on:
        for agent, role, _ in TEAM:
            steps.append(Step(T.TEAM_RETIRED, f"{agent}:retire", "supervisor", f"Retired {agent}",
                              payload={"agent_id": agent, "role": role}, delay=0.02))
    steps.extend(llm_steps("supervisor", f"Review the team's work on {topic}", final_result(task), options, rng,
                           tag="review", final=True))
    steps.append(closing(final_result(task)))
    return steps


def swarm(task: TaskSubmitted, options: Options, rng: random.Random) -> list[Step]:
    """A lead keeps a task board; workers take tasks; the lead decides when the swarm is done."""
    topic = topic_of(task)
    board: list[dict[str, Any]] = [
        {"id": f"t{i}", "title": title, "status": "pending", "assignee": None}
        for i, title in enumerate([f"collect sources on {topic}", f"compare views on {topic}",
                                   f"write up {topic}"], start=1)
    ]
    workers = [f"swarm-agent-{i}" for i in range(1, len(board) + 1)]
    steps = opening(workers)
    steps.append(Step(T.LEAD_DECISION, "lead:plan", "lead", f"Split the work into {len(board)} tasks",
                      payload={"decision": "split", "tasks": len(board)}, delay=0.05))
    steps.append(_board("board:0", board, "Task board created"))
    for n, (item, agent) in enumerate(zip(board, workers, strict=True), start=1):
        item.update(status="in_progress", assignee=agent)
        steps.append(_board(f"board:{n}:take", board, f"{agent} took {item['id']}"))
        steps.extend(worker(agent, f"swarm worker on '{item['title']}'", "web_search", topic, options, rng))
        item["status"] = "done"
        steps.append(_board(f"board:{n}:done", board, f"{item['id']} done"))
    steps.append(Step(T.LEAD_DECISION, "lead:finish", "lead", "All tasks done; finishing",
                      payload={"decision": "finish"}, delay=0.05))
    steps.append(closing(final_result(task)))
    return steps


def _board(name: str, board: list[dict[str, Any]], message: str) -> Step:
    return Step(T.TASKLIST_UPDATED, name, "lead", message, payload={"tasks": [dict(t) for t in board]}, delay=0.02)
