"""A workflow's past control commands, read back from the control topic.

The runner commits a control record as soon as it has applied it to a running play. If that
runner dies, the task's next owner plays it again from the start, but it will never be given
the commands the dead runner consumed: an approval decision or a swarm message would be lost.
So a play that may wait for humans first reads its workflow's commands back from Kafka (the
partition is found by time, from the task's creation), and the decision travels through Kafka
rather than through one runner's memory.

Commands written after the read began reach the play through the live consumer: the play is
registered before the read starts, so the worker hands them over as they arrive.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import TypeAdapter

from agentwire.kafka.history import EventLog
from agentwire.runner.control import Command
from agentwire.schema import ControlCommand, DecodeError, TaskSubmitted, decode_as
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(seconds=5)  # ingest pods' clocks against the broker's record timestamps
_commands: TypeAdapter[Command] = TypeAdapter(ControlCommand)


class ControlLedger:
    def __init__(self, kafka: KafkaSettings, *, readers: int = 1) -> None:
        self._log = EventLog(kafka, readers=readers, topic=kafka.topics.control)

    async def start(self) -> None:
        await self._log.start()

    async def stop(self) -> None:
        await self._log.stop()

    async def recall(self, task: TaskSubmitted) -> list[Command]:
        """The workflow's control commands so far, in the topic's order."""
        start = await self._log.offset_since(task.workflow_id, task.created_at - CLOCK_SKEW)
        commands: list[Command] = []
        async for records in self._log.read(task.workflow_id, start):
            for record in records:
                try:
                    commands.append(decode_as(_commands, record.value))
                except DecodeError:
                    log.warning("undecodable control record at %d-%d", record.partition, record.offset)
        return commands
