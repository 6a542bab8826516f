"""The runner worker: takes tasks and control commands from its partitions and plays tasks.

Tasks and control are co-partitioned and consumed in one group with the range
assignor, so the runner that plays a task also receives its control commands.
A task's offset is committed only after its play ended; a runner that dies or
loses the partition leaves the task to the next owner, which plays it again
(the processor drops the events it already has).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from pydantic import TypeAdapter

from agentwire.kafka import ConsumeLoop, DeadLetters, Record, kafka_away, make_consumer, make_producer
from agentwire.kafka.metrics import counter, gauge, histogram
from agentwire.runner.framing import Framer
from agentwire.runner.ledger import ControlLedger
from agentwire.runner.offsets import OffsetTracker
from agentwire.runner.player import Player
from agentwire.schema import ControlCommand, RawEvent, TaskSubmitted, decode, decode_as, encode, encode_many
from agentwire.service.settings import Settings

log = logging.getLogger(__name__)

_control = TypeAdapter(ControlCommand)

FRAME_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
RETRY_BACKOFF_S = 1.0
RETRY_BACKOFF_MAX_S = 10.0


class RunnerWorker:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topics = settings.kafka.topics
        self._tracker = OffsetTracker()
        self._plays: dict[str, tuple[Player, asyncio.Task[None], TopicPartition]] = {}
        self._framers: dict[str, Framer] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._ledger = ControlLedger(settings.kafka)
        self.ready = False
        self._started = counter("agentwire_runner_tasks_started_total", "Task plays started")
        self._finished = counter("agentwire_runner_tasks_finished_total", "Task plays ended", ["outcome"])
        self._running = gauge("agentwire_runner_tasks_running", "Task plays in progress")
        self._replays = counter("agentwire_runner_play_replays_total",
                                "Plays replayed from their start after Kafka failed a send")
        self._emitted = counter("agentwire_runner_events_emitted_total", "Raw events produced")
        self._frames = histogram("agentwire_runner_frame_events", "Events per raw record sent (frame size)",
                                 buckets=FRAME_BUCKETS)

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        self._producer = make_producer(settings.kafka)
        self._consumer = make_consumer(
            settings.kafka,
            group_id=group_of(settings),
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=300_000,
        )
        await self._producer.start()
        await self._ledger.start()
        await self._consumer.start()
        self._consumer.subscribe([self._topics.tasks, self._topics.control], listener=_Rebalance(self))
        loop = ConsumeLoop(
            self._consumer,
            self._handle,
            service="runner",
            dead_letters=DeadLetters(self._producer, self._topics.dlq, "runner"),
            commit=False,
            on_batch=self._commit,
        )
        self.ready = True
        try:
            await loop.run(stop)
        finally:
            self.ready = False
            await self._drain()
            await self._consumer.stop()
            await self._ledger.stop()
            await self._producer.stop()
            log.info("runner stopped")

    async def _handle(self, record: Record) -> None:
        tp = TopicPartition(record.topic, record.partition)
        if record.topic == self._topics.tasks:
            self._tracker.seen(tp, record.offset)
            task = decode(TaskSubmitted, record.value)
            self._start(task, tp, record.offset)
        else:
            self._tracker.seen(tp, record.offset)
            command = decode_as(_control, record.value)
            entry = self._plays.get(command.workflow_id)
            if entry is not None:
                entry[0].control.apply(command)

    def _start(self, task: TaskSubmitted, tp: TopicPartition, offset: int) -> None:
        if task.workflow_id in self._plays:
            self._tracker.finished(tp, offset)  # a duplicate submission of a task already playing
            return
        runner = self._settings.runner
        player = Player(task, self._emit_for(task.workflow_id), default_speed=runner.default_speed,
                        approval_timeout_s=runner.approval_timeout_s, recall=self._ledger.recall)
        self._tracker.started(tp, offset)
        play = asyncio.create_task(self._play(player, tp, offset), name=f"play:{task.workflow_id}")
        self._plays[task.workflow_id] = (player, play, tp)
        self._started.inc()
        self._running.set(len(self._plays))

    async def _play(self, player: Player, tp: TopicPartition, offset: int) -> None:
        """Play a task until every event it emitted is acknowledged by Kafka, then mark it finished.

        A send that fails (a broker outage, a leader election) makes the whole play run again: the
        replay emits the same event ids, so the processor keeps what it already has and takes the rest.
        """
        outcome = "error"
        workflow_id = player.task.workflow_id
        try:
            attempt = 1
            while True:
                framer = self._framers[workflow_id] = Framer(self._send, on_frame=self._frames.observe)
                try:
                    await player.play()
                    await framer.flush()
                    break
                except KafkaError as exc:
                    if not kafka_away(exc):
                        raise
                    # Kafka is away (an outage, a leader election): replay until it takes the events.
                    # Giving up would strand the task until this runner restarts; the processor's
                    # workflow timeout bounds what a client waits meanwhile.
                    attempt += 1
                    log.warning("play of %s lost a send (%s); replaying it (attempt %d)", workflow_id, exc, attempt)
                    self._replays.inc()
                    await asyncio.sleep(min(RETRY_BACKOFF_S * 2 ** min(attempt - 2, 4), RETRY_BACKOFF_MAX_S))
                    player = player.replay()
                    self._plays[workflow_id] = (player, self._plays[workflow_id][1], tp)
            outcome = "done"
            self._tracker.finished(tp, offset)
        except asyncio.CancelledError:
            outcome = "abandoned"
            raise
        except Exception:
            log.exception("play of %s failed; leaving it to be replayed", workflow_id)
        finally:
            self._plays.pop(workflow_id, None)
            self._framers.pop(workflow_id, None)
            self._finished.labels(outcome).inc()
            self._running.set(len(self._plays))

    def _emit_for(self, workflow_id: str) -> Callable[[RawEvent], Awaitable[None]]:
        async def emit(event: RawEvent) -> None:
            await self._framers[workflow_id].emit(event)

        return emit

    async def _send(self, frame: list[RawEvent]) -> asyncio.Future[Any]:
        """One raw record: a single event as itself, several as a frame (a JSON array)."""
        assert self._producer is not None
        value = encode(frame[0]) if len(frame) == 1 else encode_many(frame)
        delivery = await self._producer.send(self._topics.events_raw, value, key=frame[0].workflow_id.encode())
        self._emitted.inc(len(frame))
        return delivery

    async def _commit(self) -> None:
        offsets = self._tracker.committable()
        if offsets and self._consumer is not None:
            await self._consumer.commit(offsets)
            self._tracker.committed(offsets)

    async def abandon(self, tps: set[TopicPartition]) -> None:
        """Stop plays on partitions this runner no longer owns (the new owner replays them)."""
        tasks_topic = self._topics.tasks
        doomed = [(wf, play) for wf, (_, play, tp) in self._plays.items()
                  if TopicPartition(tasks_topic, tp.partition) in tps]
        for _, play in doomed:
            play.cancel()
        for _, play in doomed:
            with contextlib.suppress(asyncio.CancelledError):
                await play
        with contextlib.suppress(Exception):
            await self._commit()
        self._tracker.forget(tps)

    async def _drain(self) -> None:
        """On shutdown: let plays finish within the grace period, then abandon the rest."""
        plays = [play for _, play, _ in self._plays.values()]
        if plays:
            log.info("draining %d plays (grace %.1fs)", len(plays), self._settings.runner.drain_grace_s)
            await asyncio.wait(plays, timeout=self._settings.runner.drain_grace_s)
        for play in plays:
            play.cancel()
        for play in plays:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await play
        with contextlib.suppress(Exception):
            await self._commit()


def group_of(settings: Settings) -> str:
    """The runner's consumer group: ``runner.group_id``, or ``<topic_prefix>-runner`` if left at its default.

    Stacks that share a broker with different topic prefixes must not share a group:
    every member's join would rebalance (and so interrupt) every other stack's plays.
    """
    group = settings.runner.group_id
    return f"{settings.kafka.topic_prefix}-runner" if group == "agentwire-runner" else group


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: RunnerWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.abandon(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("runner assigned %d partitions", len(assigned))
