"""The HTTP API as the CLI uses it: REST calls and a resuming SSE reader."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

# SSE names the edge renames, mapped back to the event type.
RENAMED = {
    "thread.message.delta": "LLM_PARTIAL", "thread.message.completed": "LLM_OUTPUT", "error": "ERROR_OCCURRED",
    "done": "STREAM_END", "workflow.pausing": "WORKFLOW_PAUSING", "workflow.paused": "WORKFLOW_PAUSED",
    "workflow.resumed": "WORKFLOW_RESUMED", "workflow.cancelling": "WORKFLOW_CANCELLING",
    "workflow.cancelled": "WORKFLOW_CANCELLED",
}
TERMINAL = {"TASK_STATUS_COMPLETED", "TASK_STATUS_FAILED", "TASK_STATUS_CANCELLED", "TASK_STATUS_TIMEOUT"}


class ApiError(Exception):
    """A non-2xx answer: ``status`` and the server's ``{"error"}`` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass
class Event:
    """One streamed event, normalised back to the plain event JSON shape."""

    name: str
    id: str | None
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return RENAMED.get(self.name) or str(self.data.get("type") or self.name)

    @property
    def text(self) -> str:
        if self.type == "LLM_PARTIAL":
            return str(self.data.get("delta") or "")
        if self.type == "LLM_OUTPUT":
            return str(self.data.get("response") or self.data.get("message") or "")
        if self.type == "APPROVAL_REQUESTED" and "approval_id" in self.payload:  # its message is JSON for the SDK
            return f"{self.payload.get('description') or 'Approval requested'} [{self.payload['approval_id']}]"
        return str(self.data.get("message") or "")

    @property
    def payload(self) -> dict[str, Any]:
        value = self.data.get("metadata") if self.type == "LLM_OUTPUT" else self.data.get("payload")
        return value if isinstance(value, dict) else {}

    def as_json(self) -> dict[str, Any]:
        keys = ("workflow_id", "agent_id", "timestamp", "seq", "stream_id")
        plain = {"type": self.type, **{k: self.data[k] for k in keys if k in self.data}}
        plain["message"] = self.text
        if self.payload:
            plain["payload"] = self.payload
        return plain


@dataclass
class Api:
    base_url: str
    api_key: str | None = None
    timeout: float = 30.0
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        self._http = httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        response = self._http.request(method, path, json=body, params={k: v for k, v in params.items() if v})
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:200]}
        if response.status_code >= 400:
            raise ApiError(response.status_code, str(data.get("error") or data))
        return dict(data)

    def wait_terminal(self, workflow_id: str, within: float = 5.0) -> dict[str, Any]:
        """The task's status, waiting briefly for the terminal one (it follows the stream within 1 s)."""
        deadline = time.monotonic() + within
        while True:
            task = self.call("GET", f"/api/v1/tasks/{workflow_id}")
            if task["status"] in TERMINAL or time.monotonic() > deadline:
                return task
            time.sleep(0.2)

    def stream(self, workflow_id: str, types: str | None = None, max_retries: int = 10) -> Iterator[Event]:
        """Events of the workflow until ``done`` or a clean close; resumes after drops with Last-Event-ID."""
        last_id: str | None = None
        retries = 0
        params = {"workflow_id": workflow_id, **({"types": types} if types else {})}
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self._http.stream("GET", "/api/v1/stream/sse", params=params, headers=headers,
                                       timeout=httpx.Timeout(self.timeout, read=60.0)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response.status_code, response.text[:200])
                    for event in parse(response.iter_lines()):
                        retries = 0
                        if event.id:
                            last_id = event.id
                        if event.name == "done":
                            return
                        yield event
                return  # a clean close means the stream is finished
            except (httpx.TransportError, httpx.RemoteProtocolError):
                retries += 1
                if retries > max_retries:
                    raise
                time.sleep(min(0.2 * 2**retries, 5.0))


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """SSE frames from text lines (comments and ``retry:`` ignored)."""
    name, event_id, data = "message", None, []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    body = json.loads(text)
                except ValueError:
                    body = {"message": text}
                yield Event(name, event_id, body if isinstance(body, dict) else {"message": text})
            name, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "id":
                event_id = value
            elif key == "data":
                data.append(value)
