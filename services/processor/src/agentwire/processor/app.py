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

Tables and memory: ``workflows`` (rows) and ``tasks`` live in faust's RocksDB store
(rocksdict), on disk, with write buffers and caches bounded by
``processor.table_memory_mb``; only ``live`` (the ids of workflows that have not
ended) is held in memory, so memory and the timeout scan depend on the live
workflows, never on history. A restart with its data directory recovers only the
changelog records written after the offsets the store remembers. Rows of workflows
that ended more than ``retention.tasks_days`` ago are tombstoned (sweep below).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT
from pydantic import TypeAdapter

from agentwire.kafka import delivered, make_producer
from agentwire.kafka.metrics import counter, gauge
from agentwire.processor import consumer, tables
from agentwire.processor.offsets import OffsetWatch
from agentwire.processor.pipeline import Pipeline
from agentwire.processor.records import TERMINAL_VALUES
from agentwire.processor.row import Row
from agentwire.processor.sending import Changelog
from agentwire.processor.sequencer import Limits, Sequencer
from agentwire.schema import (
    ControlCommand,
    DecodeError,
    InternalType,
    RawEvent,
    TaskSubmitted,
    decode,
    decode_as,
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
        store="rocksdb://",  # the tables' default (the live set says memory: it is small)
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=1,
        producer_max_batch_size=256 * 1024,
        producer_acks=-1,
        producer_request_timeout=kafka.request_timeout_ms / 1000,
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
        self._partitions = kafka.partitions
        topics = kafka.topics
        conf = settings.processor
        self.app = faust_app(settings, f"{kafka.topic_prefix}-processor")
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.inbound = self.app.topic(topics.tasks, topics.control, **raw)
        self.raw_topic = self.app.topic(topics.events_raw, **raw)
        schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
        table = {"default": None, "schema": schema, "partitions": kafka.partitions}
        self.rows_table = self.app.Table("workflows", options=tables.rocksdb_options(settings), **table)
        self.tasks_table = self.app.Table("tasks", options=tables.rocksdb_options(settings), **table)
        for stored in (self.rows_table, self.tasks_table):
            tables.bound_memory(stored)
        # ids of workflows not yet ended; "memory://" alone would read as no store at all (an empty
        # URL is false) and fall back to the app's RocksDB
        self.live_table = self.app.Table("live", store="memory://live", **table)
        self._sweep: tuple[int, bytes | None] = (-1, None)  # the retention sweep's position: partition, last key
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
        committed = consumer.committed_offsets(self.app)
        self._admit_watch, self._sequence_watch = OffsetWatch(committed), OffsetWatch(committed)
        self._admit_dead = counter("agentwire_processor_dlq_records_total", "Records sent to the dead-letter topic",
                                   ["source_topic"])
        self._rebalances = counter("agentwire_processor_rebalances_total", "Partition assignments received")
        self._table_rows = gauge("agentwire_processor_table_rows", "Rows held in each table", ["table"])
        self._table_memory = gauge("agentwire_processor_table_memory_bytes",
                                   "RocksDB memory of each table: its cache (blocks, index, filters, memtables) "
                                   "and the memtables alone", ["table", "kind"])
        self._wire()
        if conf.fault_seek_hold_s:
            consumer.hold_after_seek(self.app, settings)

    # --- ports used by the Pipeline ----------------------------------------------------

    def load_row(self, workflow_id: str) -> Row | None:
        stored = tables.stored(self.rows_table, self._partitions, workflow_id)
        return Row.model_validate(stored) if stored else None

    def load_task(self, workflow_id: str) -> TaskSubmitted | None:
        data = tables.stored(self.tasks_table, self._partitions, workflow_id)
        return TaskSubmitted.model_validate(data) if data else None

    def row_records(self, snapshots: dict[str, dict[str, Any]]) -> list[Changelog]:
        """The rows' changelog records, and the live set's: a workflow joins it with its first row
        and leaves it (a tombstone) with its terminal one."""
        live = self.live_table.data
        marks: dict[str, dict[str, Any] | None] = {}
        for workflow_id, snapshot in snapshots.items():
            ended = snapshot["status"] in TERMINAL_VALUES
            if ended and workflow_id in live:
                marks[workflow_id] = None
            elif not ended and workflow_id not in live:
                marks[workflow_id] = {}
        changelogs = [tables.changelog(self.rows_table, self._partitions, snapshots)]
        if marks:
            changelogs.append(tables.changelog(self.live_table, self._partitions, marks))
        return changelogs

    def task_records(self, tasks: list[TaskSubmitted]) -> Changelog:
        fresh = {t.workflow_id: t.model_dump(mode="json") for t in tasks
                 if tables.stored(self.tasks_table, self._partitions, t.workflow_id) is None}
        return tables.changelog(self.tasks_table, self._partitions, fresh)

    def expire_records(self, workflow_ids: list[str]) -> list[Changelog]:
        """Tombstones for the rows and tasks of workflows past their lifetime (and out of the tables)."""
        gone: dict[str, dict[str, Any] | None] = dict.fromkeys(workflow_ids)
        return [tables.changelog(self.rows_table, self._partitions, gone),
                tables.changelog(self.tasks_table, self._partitions, gone)]

    def written(self, changelog: Changelog, last_offsets: dict[int, int]) -> None:
        tables.remember_offsets(changelog, last_offsets)

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
            see = self._admit_watch.see
            async for event in stream.events():
                message = event.message
                see(message.tp, message.offset)
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
            see = self._sequence_watch.see
            async for event in manual.events():
                message = event.message
                see(message.tp, message.offset)
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
            self._table_rows.labels("live").set(len(self.live_table.data))
            for name, table in (("workflows", self.rows_table), ("tasks", self.tasks_table)):
                self._table_rows.labels(name).set(tables.estimated_rows(table))
                for kind, used in tables.memory(table).items():
                    self._table_memory.labels(name, kind).set(used)

        @app.timer(self.settings.retention.sweep_interval_s)
        async def sweep_expired_rows() -> None:
            if self.ready and pipeline.producer is not None:
                expired = self._expired_rows(time.time() - self.settings.retention.tasks_seconds)
                if expired:
                    await pipeline.forget(expired)
                    log.info("tombstoned the rows of %d workflows past their lifetime", len(expired))

        @app.on_rebalance_complete.connect
        async def _ready(sender: Any = None, **_: Any) -> None:
            consumer.hold_flow_until_sought(self.app)
            self._load_live_rows()
            self.ready = True

        @app.on_partitions_assigned.connect
        async def _assigned(sender: Any = None, assigned: Any = None, **_: Any) -> None:
            self._rebalances.inc()
            self._admit_watch.reset()
            self._sequence_watch.reset()
            consumer.tune_fetches(self.app, self.settings.processor)

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
            await self._delivered(lambda: self.app.producer.send(self.topic_dlq, key, value, None, None, headers))
            self._admit_dead.labels(message.topic).inc()
            return
        await self._delivered(lambda: self.raw_topic.send(key=raw.workflow_id.encode(), value=encode(raw)))

    async def _delivered(self, send: Callable[[], Awaitable[Awaitable[Any]]]) -> None:
        """Send a record and wait until Kafka has it, sending again while Kafka is away.

        The admit agent acknowledges a record when it asks for the next one, and faust's commit
        does not check that what was sent was delivered: a record whose send failed (a batch
        that expired in an outage longer than the request timeout) would be committed past and
        its admission or command lost. One wait per task or command is small beside the events
        each task makes.
        """
        await delivered(send, "a forward of the admit agent")

    def _load_live_rows(self) -> None:
        """After recovery: the rows of workflows that have not ended join the working set.

        From then on the working set holds every live workflow of this worker (the pipeline adds
        new ones and drops ended ones), so the timeout timer scans only those, never the history;
        they are found through the live set, never by reading the rows table.
        """
        working = self.pipeline.rows
        for workflow_id in list(self.live_table.data.keys()):
            if workflow_id in working:
                continue
            stored = tables.stored(self.rows_table, self._partitions, workflow_id)
            if stored and stored.get("status") not in TERMINAL_VALUES:
                working[workflow_id] = Row.model_validate(stored)

    def _expired_rows(self, before: float) -> list[str]:
        """The next ``processor.sweep_rows`` rows of the partitions this worker owns: the ended
        workflows among them whose lifetime is over. The scan goes on where the last one stopped
        (each interval reads a slice, never the whole history at once) and wraps around."""
        topic = self.settings.kafka.topics.events_raw
        owned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic)
        if not owned:
            return []
        found: list[str] = []
        budget = self.settings.processor.sweep_rows
        partition, after = self._sweep
        if partition not in owned:
            partition, after = _next_owned(owned, partition), None
        for _ in range(len(owned)):
            rows = tables.stored_slice(self.rows_table, partition, after, budget)
            for key, stored in rows:
                ended = stored.get("completed_at")
                workflow_id = orjson.loads(key)
                if ended and ended < before and workflow_id not in self.pipeline.rows:
                    found.append(workflow_id)
            budget -= len(rows)
            if budget <= 0:
                after = rows[-1][0]
                break
            partition, after = _next_owned(owned, partition), None  # this one is done: the next
        self._sweep = (partition, after)
        return found

    async def _time_out_silent(self) -> None:
        now = time.time()
        for workflow_id, row in list(self.pipeline.rows.items()):
            if not self.sequencer.due(row, now):  # silent too long, or an approval expired
                continue
            raw = RawEvent(event_id=f"{workflow_id}:timeout:{int(now)}", workflow_id=workflow_id,
                           type=InternalType.TIMEOUT)
            await self.raw_topic.send(key=workflow_id.encode(), value=encode(raw))


def _next_owned(owned: list[int], partition: int) -> int:
    """The owned partition after ``partition``, wrapping around."""
    return next((p for p in owned if p > partition), owned[0])
