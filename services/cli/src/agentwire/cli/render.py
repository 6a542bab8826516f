"""How followed events are shown: JSON lines, plain lines, or a live ``rich`` view on a terminal."""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from agentwire.cli.client import Event

QUIET_AGENTS = {"orchestrator", "planner", ""}


class Renderer(Protocol):
    def __enter__(self) -> Renderer: ...
    def __exit__(self, *exc: object) -> None: ...
    def event(self, event: Event) -> None: ...


class JsonLines:
    """One event per line, in the plain event JSON shape."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def event(self, event: Event) -> None:
        self.out.write(json.dumps(event.as_json()) + "\n")
        self.out.flush()


class PlainLines:
    """A line per event for pipes and logs; LLM deltas are left out (the completed text follows)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def event(self, event: Event) -> None:
        if event.type == "LLM_PARTIAL":
            return
        seq = event.data.get("seq", "-")
        agent = event.data.get("agent_id") or "-"
        extra = ""
        if event.type == "PROGRESS" and "percent" in event.payload:
            extra = f" [{event.payload['percent']}%]"
        self.out.write(f"{seq:>4} {event.type:<20} {agent:<16} {event.text}{extra}\n")
        self.out.flush()


class LiveView:
    """A task bar, one bar per agent with its current step, the streamed text, tools and budget."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.task_bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"))
        self.overall = self.task_bar.add_task(title, total=100)
        self.agent_bars = Progress(TextColumn("{task.fields[agent]:<16}"), BarColumn(bar_width=20),
                                   TextColumn("{task.description}"))
        self.agents: dict[str, TaskID] = {}
        self.text: dict[str, str] = {}
        self.speaker = ""
        self.tools: deque[str] = deque(maxlen=5)
        self.budget = Text("")
        self.live = Live(self.render(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self.render())
        self.live.__exit__(None, None, None)

    def render(self) -> Group:
        text = Text(self.text.get(self.speaker, ""), style="italic")
        tools = Text("\n".join(self.tools) or "—", style="cyan")
        return Group(
            self.task_bar, self.agent_bars,
            Panel(text, title=f"LLM {self.speaker}".strip(), title_align="left"),
            Panel(tools, title="tools", title_align="left"),
            self.budget,
        )

    def agent(self, name: str) -> TaskID:
        if name not in self.agents:
            self.agents[name] = self.agent_bars.add_task("started", total=1, agent=name)
        return self.agents[name]

    def event(self, event: Event) -> None:
        kind, agent, payload = event.type, str(event.data.get("agent_id") or ""), event.payload
        if kind == "PROGRESS" and isinstance(payload.get("percent"), int | float):
            self.task_bar.update(self.overall, completed=float(payload["percent"]))
        if agent not in QUIET_AGENTS:
            bar = self.agent(agent)
            step = "writing…" if kind == "LLM_PARTIAL" else f"{kind.lower()}: {event.text[:50]}"
            done = 1 if kind in ("AGENT_COMPLETED", "AGENT_FAILED") else 0
            self.agent_bars.update(bar, description=step, completed=done)
        if kind == "LLM_PARTIAL":
            if self.speaker != agent or agent not in self.text:
                self.text[agent] = ""
            self.speaker = agent
            self.text[agent] += event.text
        elif kind == "LLM_OUTPUT":
            self.speaker = agent
            self.text[agent] = event.text
        elif kind in ("TOOL_INVOKED", "TOOL_OBSERVATION", "TOOL_ERROR"):
            arrow = {"TOOL_INVOKED": "→", "TOOL_OBSERVATION": "←", "TOOL_ERROR": "✗"}[kind]
            self.tools.append(f"{arrow} {agent}: {event.text}")
        elif kind == "BUDGET_THRESHOLD":
            self.budget = budget_line(payload)
        elif kind in ("WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "ERROR_OCCURRED"):
            self.console.print(Text(f"{kind}: {event.text}", style="bold red"))
        self.live.update(self.render())


def budget_line(payload: dict[str, Any]) -> Text:
    """The budget warning, amber from 80 % and red at 100 %."""
    percent = float(payload.get("usage_percent") or 0)
    style = "bold red" if percent >= 100 else "yellow" if percent >= 80 else "green"
    used, budget = payload.get("tokens_used"), payload.get("tokens_budget")
    return Text(f"token budget: {percent:.0f}% ({used} of {budget} tokens)", style=style)
