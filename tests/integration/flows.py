"""Helpers for the processor's integration tests: submit, read SSE, poll status."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx

from tests.support.sse import Frame, parse
from tests.support.stack import Stack
from tests.support.wait import eventually

CONTROL_NAMES = {
    "workflow.pausing": "WORKFLOW_PAUSING", "workflow.paused": "WORKFLOW_PAUSED",
    "workflow.resumed": "WORKFLOW_RESUMED", "workflow.cancelling": "WORKFLOW_CANCELLING",
    "workflow.cancelled": "WORKFLOW_CANCELLED", "thread.message.delta": "LLM_PARTIAL",
    "thread.message.completed": "LLM_OUTPUT", "error": "ERROR_OCCURRED", "done": "STREAM_END",
}


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus series over its label sets (those carrying ``labels``), from ``base_url``/metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    total = 0.0
    for found in re.finditer(rf"^{name}(?:{{([^}}]*)}})? (\S+)$", text, re.MULTILINE):
        if all(f'{key}="{value}"' in (found.group(1) or "") for key, value in labels.items()):
            total += float(found.group(2))
    return total


def service_metric(stack: Stack, service: str, name: str, **labels: str) -> float:
    """``metric`` of one service of ``stack`` (its ops port)."""
    return metric(stack.services[service].health_url.removesuffix("/health"), name, **labels)


def submit(stack: Stack, mode: str | None = None, query: str = "Research AI trends", **context: Any) -> str:
    body: dict[str, Any] = {"query": query, "context": {"speed": 20, **context}}
    if mode:
        body["mode"] = mode
    response = httpx.post(f"{stack.base_url}/api/v1/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["workflow_id"])


def types_of(frames: list[Frame]) -> list[str]:
    return [CONTROL_NAMES.get(str(f.event), str(f.event)) for f in frames]


def check_stream(frames: list[Frame]) -> list[dict[str, Any]]:
    """seq 1..N exactly once, in order, one terminal event, then STREAM_END; return the events."""
    assert frames and frames[-1].event == "done" and frames[-1].data == ["[DONE]"]
    events = [f.json for f in frames[:-1]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = types_of(frames)
    assert types[0] == "WORKFLOW_STARTED"
    terminal = [t for t in types if t in {"WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"}]
    assert len(terminal) == 1 and types[-2] == terminal[0]
    return events


def status(stack: Stack, workflow_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/api/v1/tasks/{workflow_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(stack: Stack, workflow_id: str, wanted: str, timeout: float = 20.0) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        nonlocal last
        last = status(stack, workflow_id)
        return last if last["status"] == wanted else None

    try:
        return eventually(reached, timeout, f"{workflow_id} {wanted}")
    except AssertionError:
        raise AssertionError(f"{workflow_id} never reached {wanted}; last {last.get('status')}") from None


class Reader(threading.Thread):
    """Reads one SSE stream to its end in the background."""

    def __init__(self, stack: Stack, workflow_id: str, timeout: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.workflow_id = workflow_id
        self.args = (stack.base_url, {"workflow_id": workflow_id}, None, timeout)
        self.frames: list[Frame] = []
        self.error: BaseException | None = None

    @property
    def streamed(self) -> int:
        return len(self.frames)

    def run(self) -> None:
        base_url, params, _, timeout = self.args
        try:
            with httpx.stream("GET", f"{base_url}/api/v1/stream/sse", params=params, timeout=timeout) as response:
                assert response.status_code == 200
                for item in parse(response.iter_lines()):
                    if isinstance(item, Frame):
                        self.frames.append(item)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 60.0) -> list[Frame]:
        self.join(timeout)
        if self.is_alive():
            last = [(f.id, f.event) for f in self.frames[-3:]]
            raise AssertionError(f"stream of {self.workflow_id} did not end: {len(self.frames)} frames, last {last}")
        if self.error is not None:
            raise self.error
        return self.frames
