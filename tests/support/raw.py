"""Raw records as a runner writes them, for loads that bypass the runner (benches, processor tests)."""

from __future__ import annotations

import orjson

from agentwire.schema import TaskSubmitted

USAGE = {"tokens_used": 10, "input_tokens": 5, "output_tokens": 5, "cost_usd": 0.0001, "model_used": "m",
         "provider": "p"}


def workflow_events(workflow_id: str, count: int) -> tuple[list[bytes], int]:
    """One workflow's raw events and how many sequenced events they become."""
    body: list[tuple[str, dict | None, str]] = [("WORKFLOW_STARTED", None, "Task processing started")]
    agents = max((count - 3) // 10, 1)
    body.append(("PROGRESS", {"completed": 0, "total": agents, "percent": 0}, "plan"))
    for a in range(agents):
        body.append(("AGENT_STARTED", None, "Processing query"))
        body.extend(("LLM_PARTIAL", None, f"chunk {i} of agent {a} ") for i in range(7))
        body.append(("LLM_OUTPUT", USAGE, "the answer"))
        body.append(("AGENT_COMPLETED", None, "Task done"))
    while len(body) < count - 1:
        body.append(("LLM_PARTIAL", None, "padding chunk "))
    body.append(("WORKFLOW_COMPLETED", {"result": "done"}, "All done"))
    task = TaskSubmitted(workflow_id=workflow_id, tenant="bench", query="q", session_id="bench").model_dump(
        mode="json")
    records = [  # like the runner's: the first event carries the task (a workflow the processor knows)
        orjson.dumps({"event_id": f"{workflow_id}:{n}", "workflow_id": workflow_id, "type": kind,
                      "agent_id": "bench-agent", "message": message, "payload": payload,
                      "timestamp": "2026-01-01T00:00:00Z", **({"task": task} if n == 1 else {})})
        for n, (kind, payload, message) in enumerate(body, start=1)
    ]
    return records, len(records) + agents + 1  # + PROGRESS per AGENT_COMPLETED, + STREAM_END
