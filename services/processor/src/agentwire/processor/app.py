"""Composition root of the processor: a faust-streaming app.

Agents:
- ``admit`` forwards TaskSubmitted and control commands into the raw topic as
  internal records, so one ordered stream per workflow feeds the sequencer;
- ``sequence`` hands every raw record to the Pipeline (pipeline.py), which
  sequences it at once and ships outputs, rows and acks one batch at a time;
- a timer turns silent workflows into internal timeout records.

The tables keep faust's changelog topics and recovery; the pipeline writes their
changelog records itself, through its own producer, because it writes a row only
after the row's outputs were delivered, long after faust's "current event" moved on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT
from pydantic import TypeAdapter

from agentwire.kafka import make_producer, partition_for
from agentwire.kafka.metrics import counter, gauge
from agentwire.processor.pipeline import Pipeline, Records
from agentwire.processor.records import TERMINAL_VALUES
from agentwire.processor.row import Row
from agentwire.processor.sequencer import Limits, Sequencer
from agentwire.schema import (
    ControlCommand,
    DecodeError,
    InternalType,
    RawEvent,
    TaskSubmitted,
    decode,
    decode_as,
    dumps,
    encode,
)
from agentwire.service.settings import Settings

log = logging.getLogger(__name__)

_control = TypeAdapter(ControlCommand)


def faust_app(settings: Settings, name: str) -> faust.App:
    """The processor's faust app, without agents (the throughput benchmark's no-op agent uses it too)."""
    kafka = settings.kafka
    return faust.App(
        name,
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
        datadir=settings.processor.data_dir,
        topic_disable_leader=True,
    )


class Processor:
    """Holds the faust app and the state its agents share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        kafka = settings.kafka
        topics = kafka.topics
        conf = settings.processor
        self.app = faust_app(settings, f"{kafka.topic_prefix}-processor")
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.inbound = self.app.topic(topics.tasks, topics.control, **raw)
        self.raw_topic = self.app.topic(topics.events_raw, **raw)
        schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
        self.rows_table = self.app.Table("workflows", default=None, schema=schema, partitions=kafka.partitions)
        self.tasks_table = self.app.Table("tasks", default=None, schema=schema, partitions=kafka.partitions)
        self.topic_events = topics.events
        self.topic_state = topics.task_state
        self.topic_control = topics.control
        self.topic_dlq = topics.dlq
        self.sequencer = Sequencer(Limits(conf.default_token_budget, tuple(conf.budget_thresholds),
                                          conf.workflow_timeout_s))
        self.pipeline = Pipeline(self.sequencer, self, kafka.partitions, max_batch=conf.batch_max_records,
                                 max_wait_s=conf.batch_max_wait_ms / 1000,
                                 finish_interval_s=conf.rows_interval_ms / 1000)
        self.producer: AIOKafkaProducer | None = None
        self.ready = False
        self._stream: StreamT[bytes] | None = None
        self._admit_dead = counter("agentwire_processor_dlq_records_total", "Records sent to the dead-letter topic",
                                   ["source_topic"])
        self._rebalances = counter("agentwire_processor_rebalances_total", "Partition assignments received")
        self._table_rows = gauge("agentwire_processor_table_rows", "Rows held in each table", ["table"])
        self._wire()

    # --- ports used by the Pipeline ----------------------------------------------------

    def load_row(self, workflow_id: str) -> Row | None:
        stored = self.rows_table.get(workflow_id)
        return Row.model_validate(stored) if stored else None

    def load_task(self, workflow_id: str) -> TaskSubmitted | None:
        data = self.tasks_table.get(workflow_id)
        return TaskSubmitted.model_validate(data) if data else None

    def row_records(self, snapshots: dict[str, dict[str, Any]]) -> tuple[str, Records]:
        return self._changelog(self.rows_table, snapshots)

    def task_records(self, tasks: list[TaskSubmitted]) -> tuple[str, Records]:
        fresh = {t.workflow_id: t.model_dump(mode="json") for t in tasks if self.tasks_table.get(t.workflow_id) is None}
        return self._changelog(self.tasks_table, fresh)

    def _changelog(self, table: Any, rows: dict[str, dict[str, Any]]) -> tuple[str, Records]:
        """Put rows in a table and return its changelog records (faust's own encoding: json key and value)."""
        records: Records = {}
        partitions = self.settings.kafka.partitions
        data = table.data
        for key, value in rows.items():
            data[key] = value
            records.setdefault(partition_for(key, partitions), []).append((dumps(key), dumps(value)))
        return table.changelog_topic.get_topic_name(), records

    def dead_letter(self, record: Any, reason: str) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        message = record.message
        headers = [
            ("reason", reason[:2000].encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
            ("service", b"processor"),
        ]
        return message.key, message.value, headers

    async def ack(self, records: list[Any]) -> None:
        stream = self._stream
        if stream is None:
            return
        for event in records:
            await stream.ack(event)

    # --- agents ---------------------------------------------------------------------

    def _wire(self) -> None:
        app = self.app
        pipeline = self.pipeline

        @app.agent(self.inbound, name="admit")
        async def admit(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                await self._admit(event)

        @app.agent(self.raw_topic, name="sequence")
        async def sequence(stream: StreamT[bytes]) -> None:
            manual = self._stream = stream.noack()
            add = pipeline.add
            buffered = manual.channel.queue  # what faust has read for this stream and not yet yielded
            highwater = app.consumer.highwater
            # The last highwater read per partition: it only grows, so a record below it is
            # certainly behind, and the consumer is asked again only at the cached mark
            # (asking costs ≈ 4 % of the worker's CPU when done for every record).
            marks: dict[Any, int] = {}
            async for event in manual.events():
                message = event.message
                add(event, message.key, message.value)
                if pipeline.full:
                    await pipeline.room()
                elif buffered.empty():
                    tp, after = message.tp, message.offset + 1
                    if after >= marks.get(tp, 0):
                        mark = marks[tp] = highwater(tp) or 0
                        if after >= mark:
                            # Caught up with the partition: ship now. Behind it (under load), let
                            # the batch grow with the records already waiting, up to its size limit.
                            pipeline.ready()

        @app.task
        async def ship() -> None:
            self.producer = make_producer(self.settings.kafka, linger_ms=0, max_batch_size=1024 * 1024)
            await self.producer.start()
            pipeline.producer = self.producer
            try:
                await pipeline.run()
            finally:
                await self.producer.stop()

        @app.timer(self.settings.processor.timeout_check_interval_s)
        async def find_silent_workflows() -> None:
            await self._time_out_silent()
            self._table_rows.labels("workflows").set(len(self.rows_table.data))
            self._table_rows.labels("tasks").set(len(self.tasks_table.data))

        @app.on_rebalance_complete.connect
        async def _ready(sender: Any = None, **_: Any) -> None:
            self._load_live_rows()
            self.ready = True

        @app.on_partitions_assigned.connect
        async def _assigned(sender: Any = None, assigned: Any = None, **_: Any) -> None:
            self._rebalances.inc()

        @app.on_partitions_revoked.connect
        async def _revoked(sender: Any = None, revoked: Any = None, **_: Any) -> None:
            self.ready = False
            # Ship and acknowledge what was read before the partitions move: the next owner
            # then starts after it, from rows that remember it.
            if pipeline.producer is not None:
                await pipeline.drain()
            pipeline.rows.clear()

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
            key, value, headers = self.dead_letter(event, str(exc))
            log.warning("dead-lettering %s[%d]@%d: %s", message.topic, message.partition, message.offset,
                        str(exc)[:300])
            await self.app.producer.send(self.topic_dlq, key, value, None, None, headers)
            self._admit_dead.labels(message.topic).inc()
            return
        await self.raw_topic.send(key=raw.workflow_id.encode(), value=encode(raw))

    def _load_live_rows(self) -> None:
        """After recovery: the rows of workflows that have not ended join the working set.

        From then on the working set holds every live workflow of this worker (the pipeline adds
        new ones and drops ended ones), so the timeout timer scans only those, never the history.
        """
        live = self.pipeline.rows
        for workflow_id, stored in self.rows_table.data.items():
            if stored and stored.get("status") not in TERMINAL_VALUES and workflow_id not in live:
                live[workflow_id] = Row.model_validate(stored)

    async def _time_out_silent(self) -> None:
        now = time.time()
        for workflow_id, row in list(self.pipeline.rows.items()):
            if not self.sequencer.due(row, now):  # silent too long, or an approval expired
                continue
            raw = RawEvent(event_id=f"{workflow_id}:timeout:{int(now)}", workflow_id=workflow_id,
                           type=InternalType.TIMEOUT)
            await self.raw_topic.send(key=workflow_id.encode(), value=encode(raw))
