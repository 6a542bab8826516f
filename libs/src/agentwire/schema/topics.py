"""Topic names, in one place. A prefix keeps test runs and stacks apart."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "agentwire"
DEFAULT_PARTITIONS = 12


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    @property
    def tasks(self) -> str:
        return f"{self.prefix}.tasks"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control"

    @property
    def events_raw(self) -> str:
        return f"{self.prefix}.events.raw"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def task_state(self) -> str:
        return f"{self.prefix}.task-state"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def sessions(self) -> str:
        """Compacted: what clients set on sessions (titles, deletions), keyed by tenant and session."""
        return f"{self.prefix}.sessions"

    def all(self) -> list[str]:
        return [self.tasks, self.control, self.events_raw, self.events, self.task_state, self.dlq, self.sessions]
