"""What clients asked of one running play: cancel, pause, approval decisions, swarm messages.

The worker applies commands as they arrive from the control topic; a play that may wait for
humans also applies the ones a crashed runner had already consumed, read back from Kafka
(``ledger.py``). Applying a command twice changes nothing: the first decision for an approval
wins and a message is queued once.
"""

from __future__ import annotations

import asyncio

from agentwire.schema import ApprovalDecision, CancelTask, PauseTask, ResumeTask, SwarmMessage

Command = CancelTask | PauseTask | ResumeTask | ApprovalDecision | SwarmMessage

MAX_MESSAGES = 100  # swarm messages one play answers; later ones are ignored (logged), bounding its state


class Control:
    """Control requests for one running task, read at checkpoints."""

    def __init__(self) -> None:
        self.cancel: CancelTask | None = None
        self.pause: PauseTask | None = None
        self.decisions: dict[str, ApprovalDecision] = {}
        self.inbox: list[SwarmMessage] = []
        self.message_ids: set[str] = set()
        self.changed = asyncio.Event()

    def apply(self, command: Command) -> None:
        if isinstance(command, CancelTask):
            self.cancel = command
        elif isinstance(command, PauseTask):
            self.pause = command
        elif isinstance(command, ResumeTask):
            self.pause = None
        elif isinstance(command, ApprovalDecision):
            self.decisions.setdefault(command.approval_id, command)
        elif command.message_id not in self.message_ids and len(self.message_ids) < MAX_MESSAGES:
            self.message_ids.add(command.message_id)
            self.inbox.append(command)
        self.changed.set()

    def recall(self, commands: list[Command]) -> None:
        """Apply commands read back from Kafka: decisions, messages and a cancel (all idempotent).

        Pause and resume are left to the live consumer: their order relative to what it
        delivers meanwhile is not known here.
        """
        for command in commands:
            if isinstance(command, ApprovalDecision | SwarmMessage | CancelTask):
                self.apply(command)
