"""The processor's hot path: raw records in, sequenced events out, one batch at a time.

``Pipeline.add`` runs for every raw record, synchronously and without I/O: it
decodes the record (one event, or a frame of several events of one workflow),
lets the Sequencer advance the workflow's row, and appends the encoded outputs to
the open batch, grouped by partition. ``Pipeline.run`` ships batches:

1. the outputs, as one producer batch per partition, and waits for their delivery;
   then sends the task states they changed;
2. then control commands and dead letters, and waits for those and the states; then
   the rows' snapshots (taken when the batch closed) to the table's changelog;
3. then acknowledges the batch's raw records, so faust may commit their offsets.

Steps 2 and 3 run for several delivered batches at once, at most every
``finish_interval_s``: one row write per touched workflow for all of them.

Order matters for crash safety: a raw record is acknowledged only after its
outputs and the row that remembers it are both in Kafka. A crash at any point
either replays the record against an older row (same seq numbers: readers drop
the duplicates) or finds it already remembered in the row. Sends Kafka fails
while it is away are sent again (sending.py).

A batch closes when the previous batch's outputs are delivered and the reader has
caught up with its input (``ready``: nothing more is buffered or waiting in the
partition), or when it is full, or after ``max_wait_s`` at most. At light load a
batch is one record and ships at once; under load it is everything already
waiting, which spreads the per-batch costs (produce requests, deliveries, row
writes, metrics) over many events. Step 1 of a batch overlaps step 2 of the one
before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from agentwire.kafka import partition_for
from agentwire.kafka.metrics import LATENCY_BUCKETS, counter, gauge, histogram
from agentwire.processor.records import TERMINAL_VALUES, decode_record, state_of
from agentwire.processor.row import Row
from agentwire.processor.sending import Changelog, Producer, Records, Sender, Sending
from agentwire.processor.sequencer import Outcome, Sequencer
from agentwire.schema import (
    ApprovalDecision,
    CancelTask,
    InternalType,
    RawEvent,
    TaskSubmitted,
    dumps,
    encode,
)

log = logging.getLogger(__name__)


BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

@dataclass
class Batch:
    """What the raw records sequenced since the last batch closed produced."""

    outputs: Records = field(default_factory=dict)  # for the events topic
    firsts: list[tuple[str, int, int]] = field(default_factory=list)  # (workflow, partition, index) of seq 1
    rows: dict[str, Row] = field(default_factory=dict)  # rows the batch advanced (live objects)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows as of the batch's close
    changed: set[str] = field(default_factory=set)  # workflows whose task state changed
    tasks: list[TaskSubmitted] = field(default_factory=list)  # tasks to store
    commands: list[CancelTask | ApprovalDecision] = field(default_factory=list)
    dead: list[tuple[Any, str]] = field(default_factory=list)  # (record, reason) for the dead-letter topic
    acks: list[Any] = field(default_factory=list)  # raw records to acknowledge, in order
    states: list[Sending] = field(default_factory=list)  # the task states sent in step 1
    records: int = 0  # raw records
    events: int = 0  # raw events in them (a frame holds several)
    absorbed: int = 0  # raw events that changed a row but published nothing (or nothing at all)
    unknown: int = 0  # raw events of unknown workflows (their records go to the dead-letter topic)
    published: int = 0  # outputs
    derived: dict[str, int] = field(default_factory=dict)  # outputs the processor added, by type
    terminal: dict[str, int] = field(default_factory=dict)  # workflows that ended, by status
    started: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        """Snapshot the rows now: later records advance the same Row objects in place."""
        self.snapshots = {workflow_id: row.dump() for workflow_id, row in self.rows.items()}


class Ports(Protocol):
    """What the pipeline reads and writes besides its producer; the faust app provides them."""

    topic_events: str
    topic_state: str
    topic_control: str
    topic_dlq: str

    def load_row(self, workflow_id: str) -> Row | None: ...
    def load_task(self, workflow_id: str) -> TaskSubmitted | None: ...
    def row_records(self, snapshots: dict[str, dict[str, Any]]) -> list[Changelog]: ...
    def task_records(self, tasks: list[TaskSubmitted]) -> Changelog: ...
    def expire_records(self, workflow_ids: list[str]) -> list[Changelog]: ...
    def written(self, changelog: Changelog, last_offsets: dict[int, int]) -> None: ...
    def dead_letter(self, record: Any, reason: str) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]: ...
    async def ack(self, records: list[Any]) -> None: ...


@lru_cache(maxsize=65536)
def _partition(workflow_id: str, partitions: int) -> int:
    return partition_for(workflow_id, partitions)


class Pipeline:
    def __init__(self, sequencer: Sequencer, ports: Ports, partitions: int, *, max_batch: int = 1000,
                 max_wait_s: float = 0.02, finish_interval_s: float = 0.05) -> None:
        self._sequencer = sequencer
        self._ports = ports
        self._partitions = partitions
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._finish_interval_s = finish_interval_s
        self._sender = Sender()
        self.rows: dict[str, Row] = {}  # the working set: rows of workflows not yet ended
        self._unstored: dict[str, TaskSubmitted] = {}  # admitted tasks whose table write is still to come
        self.current = Batch()
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is open or being shipped
        self._room = asyncio.Event()
        self._room.set()
        self._delivered: list[Batch] = []  # batches whose outputs are in Kafka, rows not yet
        self._delivering = False
        self._finishing = False
        self._finisher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        received = counter("agentwire_processor_events_processed_total", "Raw events processed", ["outcome"])
        self._sequenced = received.labels("sequenced")
        self._absorbed = received.labels("absorbed")
        self._dead = received.labels("dead_letter")
        self._records = counter("agentwire_processor_records_received_total", "Raw records read (an event or a frame)")
        self._events = counter("agentwire_processor_events_received_total", "Raw events read (frames hold several)")
        self._published = counter("agentwire_processor_events_published_total", "Sequenced events published")
        self._derived = counter("agentwire_processor_events_derived_total", "Derived events published", ["type"])
        self._terminal = counter("agentwire_processor_tasks_terminal_total", "Tasks that reached a terminal status",
                                 ["status"])
        self._dlq = counter("agentwire_processor_dlq_records_total", "Records sent to the dead-letter topic",
                            ["source_topic"])
        self._latency = histogram("agentwire_processor_ship_seconds", "Batch opened to its records acknowledged",
                                  buckets=LATENCY_BUCKETS)
        self._batch_records = histogram("agentwire_processor_batch_records", "Raw records per shipped batch",
                                        buckets=BATCH_BUCKETS)
        self._active = gauge("agentwire_processor_workflows_active", "Workflows held in the working set")
        self._expired = counter("agentwire_processor_rows_expired_total",
                                "Ended workflows whose rows were tombstoned at the end of their lifetime")
        self._children: dict[tuple[Any, str], Any] = {}

    @property
    def producer(self) -> Producer | None:
        return self._sender.producer

    @producer.setter
    def producer(self, producer: Producer | None) -> None:
        """Set once the worker's producer started."""
        self._sender.producer = producer

    # --- per record (no I/O, no await) ------------------------------------------------

    @property
    def full(self) -> bool:
        return self.current.records >= self._max_batch

    def ready(self) -> None:
        """The reader caught up with its input: the open batch may close (the shipper decides when)."""
        self._pending.set()

    async def room(self) -> None:
        """Wait until the open batch may grow again (backpressure when shipping lags)."""
        self._room.clear()
        self._pending.set()
        await self._room.wait()

    def add(self, record: Any, key: bytes | None, value: bytes | None) -> None:
        """Sequence one raw record (an event, or a frame of events of one workflow) into the open batch."""
        batch = self.current
        batch.records += 1
        batch.acks.append(record)
        self._idle.clear()
        try:
            raws = decode_record(key, value)
        except ValueError as exc:
            batch.dead.append((record, str(exc)))
            return
        batch.events += len(raws)
        now = time.time()
        for raw in raws:
            if self._apply(batch, raw, now):
                batch.dead.append((record, f"unknown workflow {raw.workflow_id!r} (never submitted, or past "
                                           "its lifetime)"))
                batch.unknown += len(raws)
                return  # a frame holds one workflow's events: all of them are unknown

    def _apply(self, batch: Batch, raw: RawEvent, now: float) -> bool:
        """Sequence one raw event into the batch; True when its workflow is unknown (nothing was done)."""
        workflow_id = raw.workflow_id
        row = self.rows.get(workflow_id)
        if row is None:
            row = self._ports.load_row(workflow_id)
        outcome: Outcome = self._sequencer.apply(row, raw, now)
        if outcome.unknown:
            return True
        if outcome.row is not None:
            self.rows[workflow_id] = batch.rows[workflow_id] = outcome.row
            if outcome.state_changed:
                batch.changed.add(workflow_id)
                if outcome.row.terminal:
                    status = outcome.row.status.value
                    batch.terminal[status] = batch.terminal.get(status, 0) + 1
        if outcome.task is not None:
            batch.tasks.append(outcome.task)
            batch.changed.add(workflow_id)
            self._unstored[workflow_id] = outcome.task
        if outcome.commands:
            batch.commands.extend(outcome.commands)
        events = outcome.events
        if not events:
            batch.absorbed += 1
            return False
        partition = _partition(workflow_id, self._partitions)
        queue = batch.outputs.get(partition)
        if queue is None:
            queue = batch.outputs[partition] = []
        key = workflow_id.encode()
        own = 0 if raw.type == InternalType.TIMEOUT else 1  # the raw event's own output comes first
        for n, event in enumerate(events):
            if event["seq"] == 1:
                batch.firsts.append((workflow_id, partition, len(queue)))
            queue.append((key, dumps(event)))
            if n >= own:
                kind = event["type"]
                batch.derived[kind] = batch.derived.get(kind, 0) + 1
        batch.published += len(events)
        return False

    # --- per batch ------------------------------------------------------------------

    async def run(self) -> None:
        """Ship batches until cancelled (a faust app task)."""
        while True:
            if self._failure is not None:
                raise self._failure
            if not self._pending.is_set():
                if not self.current.records:
                    self._maybe_idle()
                    await self._pending.wait()
                else:  # records the reader has not called ready for: it is behind; bound their wait
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._pending.wait(), self._max_wait_s)
            self._pending.clear()
            batch = self.current
            if not batch.records:
                continue
            self.current = Batch()
            batch.close()
            self._room.set()
            self._delivering = True
            try:
                await self._deliver(batch)
            finally:
                self._delivering = False
            self._delivered.append(batch)
            if not self._finishing:
                self._finishing = True
                self._finisher = asyncio.create_task(self._finish_delivered())

    async def _finish_delivered(self) -> None:
        """Step 2 for every batch whose outputs are delivered, several batches at a time.

        Rows and acks need not follow each record closely (faust commits every
        ``broker_commit_interval``); clients already have the outputs. So step 2 waits
        ``finish_interval_s`` and then writes each touched row once for all the batches
        delivered meanwhile: at a trickle of records that is one row write per workflow per
        interval instead of one per record.
        """
        try:
            while self._delivered:
                if self._finish_interval_s:
                    await asyncio.sleep(self._finish_interval_s)
                batches, self._delivered = self._delivered, []
                await self._finish(combined(batches))
                for batch in batches:
                    self._account(batch)
        except Exception as exc:  # the run loop raises it: the worker stops and a restart replays
            log.exception("shipping rows and acks failed")
            self._failure = exc
            self._pending.set()
        finally:
            self._finishing = False
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not (self.current.records or self._delivered or self._finishing or self._delivering):
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every record added so far is shipped and acknowledged (before a rebalance)."""
        self._pending.set()
        await self._idle.wait()

    async def _deliver(self, batch: Batch) -> None:
        """Step 1: publish the outputs and wait for Kafka; then send the task states they changed."""
        if batch.outputs:
            await self._deliver_outputs(batch)
        # Task states go out right behind the outputs (a client that saw the stream end reads the
        # final status at once); step 2 waits for them before it writes the rows.
        states = self._states(batch, batch.snapshots)
        if states:
            batch.states = [await self._sender.send(self._ports.topic_state, states)]

    async def _deliver_outputs(self, batch: Batch) -> None:
        bases = await self._sender.settle(await self._sender.send(self._ports.topic_events, batch.outputs))
        for workflow_id, partition, index in batch.firsts:
            offset = _offset_of(bases[partition], index)
            # Where the workflow's history starts: in this batch's snapshot and, before the next
            # batch closes, in the live row; the task state carries it to the edge.
            batch.rows[workflow_id].first_offset = offset
            snapshot = batch.snapshots.get(workflow_id)
            if snapshot is not None and snapshot.get("first_offset") is None:
                snapshot["first_offset"] = offset
            batch.changed.add(workflow_id)

    async def _finish(self, batch: Batch) -> None:
        """Step 2: tasks, commands and dead letters (and step 1's states) into Kafka, then the rows; then acks.

        Everything a row's advance caused lands before the row itself: once a row remembers a
        record, a replay of that record is absorbed and would not publish its state or command again.
        """
        ports = self._ports
        sendings: list[Sending] = list(batch.states)
        snapshots = batch.snapshots
        written: list[tuple[Changelog, Sending]] = []
        if batch.tasks:
            tasks = ports.task_records(batch.tasks)
            written.append((tasks, await self._sender.send(tasks.topic, tasks.records)))
            for task in batch.tasks:  # in the table now
                self._unstored.pop(task.workflow_id, None)
        if batch.commands:
            commands: Records = {}
            for command in batch.commands:
                partition = _partition(command.workflow_id, self._partitions)
                commands.setdefault(partition, []).append((command.workflow_id.encode(), encode(command)))
            sendings.append(await self._sender.send(ports.topic_control, commands))
        for sending in sendings:
            await self._sender.settle(sending)
        for record, reason in batch.dead:
            await self._dead_letter(record, reason)
        for changelog, sending in written:
            await self._written(changelog, sending)
        if snapshots:
            await self._write(ports.row_records(snapshots))
        for workflow_id, snapshot in snapshots.items():
            if snapshot["status"] in TERMINAL_VALUES:
                # Only now may the working set drop a finished row: until the table holds the
                # terminal snapshot, a late event would be sequenced against a stale row.
                if self.rows.get(workflow_id) is batch.rows[workflow_id]:
                    del self.rows[workflow_id]
        await ports.ack(batch.acks)

    async def forget(self, workflow_ids: list[str]) -> None:
        """Tombstone the rows and tasks of workflows past their lifetime (the retention sweep)."""
        await self._write(self._ports.expire_records(workflow_ids))
        self._expired.inc(len(workflow_ids))

    async def _write(self, changelogs: list[Changelog]) -> None:
        """Write changelog records and wait until Kafka has them all; then their stores learn the offsets."""
        sent = [(changelog, await self._sender.send(changelog.topic, changelog.records)) for changelog in changelogs]
        for changelog, sending in sent:
            await self._written(changelog, sending)

    async def _written(self, changelog: Changelog, sending: Sending) -> None:
        last: dict[int, int] = {}
        for partition, bases in (await self._sender.settle(sending)).items():
            for base, count in bases:
                if count:
                    last[partition] = max(last.get(partition, -1), base + count - 1)
        self._ports.written(changelog, last)

    def _states(self, batch: Batch, snapshots: dict[str, dict[str, Any]]) -> Records:
        states: Records = {}
        for workflow_id in batch.changed:
            snapshot = snapshots.get(workflow_id)
            if snapshot is None:
                continue
            task = self._unstored.get(workflow_id) or self._ports.load_task(workflow_id)
            if task is None:
                continue
            state = state_of(task, Row.model_validate(snapshot))
            partition = _partition(workflow_id, self._partitions)
            states.setdefault(partition, []).append((workflow_id.encode(), encode(state)))
        return states

    async def _dead_letter(self, record: Any, reason: str) -> None:
        key, value, headers = self._ports.dead_letter(record, reason)
        source = dict(headers).get("source_topic", b"").decode()
        log.warning("dead-lettering a record of %s: %s", source, reason[:300])
        self._child(self._dlq, source).inc()
        self._dead.inc()
        await self._sender.send_one(self._ports.topic_dlq, key, value, headers)

    def _account(self, batch: Batch) -> None:
        """Metrics, once per batch: nothing on the per-record path touches a metric."""
        self._records.inc(batch.records)
        self._events.inc(batch.events)
        self._batch_records.observe(batch.records)
        if batch.published:
            self._published.inc(batch.published)
        if batch.events > batch.absorbed + batch.unknown:
            self._sequenced.inc(batch.events - batch.absorbed - batch.unknown)
        if batch.absorbed:
            self._absorbed.inc(batch.absorbed)
        for kind, count in batch.derived.items():
            if count:
                self._child(self._derived, kind).inc(count)
        for status, count in batch.terminal.items():
            self._child(self._terminal, status).inc(count)
        self._active.set(len(self.rows))
        self._latency.observe(time.monotonic() - batch.started)

    def _child(self, metric: Any, label: str) -> Any:
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[(metric, label)] = metric.labels(label)
        return child


def combined(batches: list[Batch]) -> Batch:
    """Several delivered batches as one for step 2: each row's latest snapshot, everything else in order."""
    if len(batches) == 1:
        return batches[0]
    whole = Batch(started=batches[0].started)
    for batch in batches:
        whole.snapshots.update(batch.snapshots)
        whole.rows.update(batch.rows)
        whole.changed |= batch.changed
        whole.tasks += batch.tasks
        whole.commands += batch.commands
        whole.dead += batch.dead
        whole.acks += batch.acks
        whole.states += batch.states
    return whole


def _offset_of(bases: list[tuple[int, int]], index: int) -> int:
    """The offset of the index-th record sent to a partition, given its batches' (base offset, count)."""
    for base, count in bases:
        if index < count:
            return base + index
        index -= count
    raise IndexError(index)
