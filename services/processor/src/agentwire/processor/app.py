"""Composition root of the processor: a faust-streaming app.

Agents:
- ``admit`` forwards TaskSubmitted and control commands into the raw topic as
  internal records, so one ordered stream per workflow feeds the sequencer;
- ``sequence`` applies the Sequencer to every raw record and hands the outcome to
  the Shipper (pipeline.py), which publishes, saves the row, then acks;
- a timer turns silent workflows into internal timeout records.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.types import EventT, StreamT
from pydantic import TypeAdapter

from agentwire.kafka import partition_for
from agentwire.kafka.metrics import counter, gauge
from agentwire.processor.pipeline import Batch, Shipper
from agentwire.processor.row import Row
from agentwire.processor.sequencer import Limits, Sequencer
from agentwire.schema import (
    CancelTask,
    ControlCommand,
    DecodeError,
    InternalType,
    RawEvent,
    TaskState,
    TaskStatus,
    TaskSubmitted,
    decode,
    decode_as,
    dumps,
    encode,
)
from agentwire.service.settings import Settings

log = logging.getLogger(__name__)

_control = TypeAdapter(ControlCommand)


class Processor:
    """Holds the faust app and the state its agents share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        kafka = settings.kafka
        topics = kafka.topics
        conf = settings.processor
        self.app = faust.App(
            f"{kafka.topic_prefix}-processor",
            broker=f"kafka://{kafka.bootstrap_servers}",
            store="memory://",
            topic_partitions=kafka.partitions,
            topic_replication_factor=kafka.replication_factor,
            table_standby_replicas=0,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
            producer_linger_ms=1,
            producer_max_batch_size=256 * 1024,
            producer_acks=-1,
            broker_commit_interval=0.5,
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            stream_wait_empty=False,
            datadir=conf.data_dir,
            topic_disable_leader=True,
        )
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.inbound = self.app.topic(topics.tasks, topics.control, **raw)
        self.raw_topic = self.app.topic(topics.events_raw, **raw)
        self.events_topic = self.app.topic(topics.events, **raw)
        self.state_topic = self.app.topic(topics.task_state, **raw)
        self.control_topic = self.app.topic(topics.control, **raw)
        self.dlq_topic = self.app.topic(topics.dlq, **raw)
        schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
        self.rows_table = self.app.Table("workflows", default=None, schema=schema, partitions=kafka.partitions)
        self.tasks_table = self.app.Table("tasks", default=None, schema=schema, partitions=kafka.partitions)
        self.sequencer = Sequencer(Limits(conf.default_token_budget, tuple(conf.budget_thresholds),
                                          conf.workflow_timeout_s))
        self.rows: dict[str, Row] = {}
        self.shipper = Shipper(self)
        self.ready = False
        self._dead = counter("agentwire_processor_dlq_records_total", "Records sent to the dead-letter topic",
                             ["source_topic"])
        raw_in = counter("agentwire_processor_events_processed_total", "Raw records processed", ["outcome"])
        self._raw_sequenced = raw_in.labels("sequenced")
        self._raw_absorbed = raw_in.labels("absorbed")
        self._raw_dead = raw_in.labels("dead_letter")
        self._active = gauge("agentwire_processor_workflows_active", "Workflows held in the working set")
        self._wire()

    # --- ports used by the Shipper -------------------------------------------------

    async def save_row(self, workflow_id: str, row: dict[str, Any]) -> None:
        await self._store(self.rows_table, workflow_id, row)
        if TaskStatus(row["status"]).terminal:
            # Only now may the working set drop a finished row: until the table holds the
            # terminal snapshot, a late event would be sequenced against a stale row.
            self.rows.pop(workflow_id, None)

    async def save_task(self, task: TaskSubmitted) -> None:
        if self.tasks_table.get(task.workflow_id) is None:
            await self._store(self.tasks_table, task.workflow_id, task.model_dump(mode="json"))

    async def _store(self, table: Any, key: str, value: dict[str, Any]) -> None:
        """Write a table row from outside a stream's event context.

        The Shipper writes rows after their outputs were delivered, when faust's
        "current event" is some later event; so the changelog partition is computed from
        the key (the same murmur2 placement as every agentwire topic) instead. The record
        goes straight to the producer (faust's ``send_soon`` buffer costs more than the
        rest of a row write); faust flushes the producer before it commits offsets.
        """
        table.data[key] = value
        # Same bytes as faust's own changelog writes (json key and value), which recovery decodes.
        await self.app.producer.send(table.changelog_topic.get_topic_name(), dumps(key), dumps(value),
                                     partition_for(key, self.settings.kafka.partitions), None, None)

    def load_task(self, workflow_id: str) -> TaskSubmitted | None:
        data = self.tasks_table.get(workflow_id)
        return TaskSubmitted.model_validate(data) if data else None

    async def publish_state(self, state: TaskState) -> None:
        await self.state_topic.send(key=state.workflow_id.encode(), value=encode(state))

    async def publish_command(self, command: CancelTask) -> None:
        await self.control_topic.send(key=command.workflow_id.encode(), value=encode(command))

    # --- agents ---------------------------------------------------------------------

    def _wire(self) -> None:
        app = self.app

        @app.agent(self.inbound, name="admit")
        async def admit(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                await self._admit(event)

        @app.agent(self.raw_topic, name="sequence")
        async def sequence(stream: StreamT[bytes]) -> None:
            manual = stream.noack()
            async for event in manual.events():
                await self._sequence(manual, event)

        @app.task
        async def ship() -> None:
            await self.shipper.run()

        @app.timer(self.settings.processor.timeout_check_interval_s)
        async def find_silent_workflows() -> None:
            await self._time_out_silent()

        @app.on_rebalance_complete.connect
        async def _ready(sender: Any = None, **_: Any) -> None:
            self.ready = True

        @app.on_partitions_revoked.connect
        async def _revoked(sender: Any = None, revoked: Any = None, **_: Any) -> None:
            self.ready = False
            self.rows.clear()

    async def _dead_letter(self, event: EventT, reason: str) -> None:
        message = event.message
        headers = [
            ("reason", reason[:2000].encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
            ("service", b"processor"),
        ]
        log.warning("dead-lettering %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason[:300])
        await self.dlq_topic.send(key=message.key, value=message.value, headers=headers)
        self._dead.labels(message.topic).inc()

    async def _admit(self, event: EventT) -> None:
        message = event.message
        topics = self.settings.kafka.topics
        try:
            if message.topic == topics.tasks:
                task = decode(TaskSubmitted, message.value)
                raw = RawEvent(event_id=f"{task.workflow_id}:admitted", workflow_id=task.workflow_id,
                               type=InternalType.TASK_ADMITTED, task=task)
            else:
                command = decode_as(_control, message.value)
                raw = RawEvent(event_id=f"{command.workflow_id}:control:{message.offset}",
                               workflow_id=command.workflow_id, type="_CONTROL",
                               payload=command.model_dump(mode="json"))
        except DecodeError as exc:
            await self._dead_letter(event, str(exc))
            return
        await self.raw_topic.send(key=raw.workflow_id.encode(), value=encode(raw))

    async def _sequence(self, stream: StreamT[bytes], event: EventT) -> None:
        """Sequence one raw record; its outputs and row join the Shipper's open batch."""
        async with self.shipper.adding:
            await self._add(self.shipper.current, stream, event)
        self._active.set(len(self.rows))
        await self.shipper.added()

    async def _add(self, batch: Batch, stream: StreamT[bytes], event: EventT) -> None:
        batch.size += 1
        batch.acks.append(lambda: stream.ack(event))
        message = event.message
        try:
            raw = decode(RawEvent, message.value)
        except DecodeError as exc:
            await self._dead_letter(event, str(exc))
            self._raw_dead.inc()
            return
        key = message.key
        if key != raw.workflow_id.encode():
            await self._dead_letter(event, "record key does not match workflow_id")
            self._raw_dead.inc()
            return
        workflow_id = raw.workflow_id
        outcome = self.sequencer.apply(self._row(workflow_id), raw, time.time())
        if outcome.row is not None:
            self.rows[workflow_id] = batch.rows[workflow_id] = outcome.row
            if outcome.state_changed:
                batch.changed.add(workflow_id)
        if outcome.task is not None:
            batch.tasks.append(outcome.task)
        batch.commands.extend(outcome.commands)
        if not outcome.events:
            self._raw_absorbed.inc()
            return
        send = self.app.producer.send
        topic = self.events_topic.get_topic_name()
        for output in outcome.events:
            batch.sent.append((output, await send(topic, key, encode(output), None, None, None)))
        self._raw_sequenced.inc()

    def _row(self, workflow_id: str) -> Row | None:
        row = self.rows.get(workflow_id)
        if row is not None:
            return row
        stored = self.rows_table.get(workflow_id)
        return Row.model_validate(stored) if stored else None

    async def _time_out_silent(self) -> None:
        limit = self.settings.processor.workflow_timeout_s
        now = time.time()
        candidates: dict[str, Row] = {}
        for workflow_id, stored in list(self.rows_table.items()):
            if stored and workflow_id not in self.rows:
                candidates[workflow_id] = Row.model_validate(stored)
        candidates.update(self.rows)
        for workflow_id, row in candidates.items():
            if row.terminal or row.status.value == "TASK_STATUS_PAUSED" or now - row.last_activity < limit:
                continue
            raw = RawEvent(event_id=f"{workflow_id}:timeout:{int(now)}", workflow_id=workflow_id,
                           type=InternalType.TIMEOUT)
            await self.raw_topic.send(key=workflow_id.encode(), value=encode(raw))

