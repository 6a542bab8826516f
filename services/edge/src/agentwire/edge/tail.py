"""The live tail's Kafka client: a librdkafka consumer (confluent-kafka) owned by one thread.

Why not aiokafka here (the rest of the project uses it, history reads included): the live tail reads
every record of the partitions its clients need, and with many small workflows aiokafka's pure-Python
fetch and record decoding was most of the edge's CPU per delivery; an assigned but idle aiokafka
consumer also spent ≈ 13 % of a core on empty fetch round trips (py-spy, docs/edge.md). librdkafka
fetches and decodes in its own C threads.

How it meets the event loop: librdkafka's consumer is used from one thread at a time (confluent-kafka
serializes the calls, and a thread that polls in a loop would starve any other caller), so one thread
owns it. It runs the hub's commands (assign a partition at its end offset, drop a partition) between
polls, and hands each batch of records to the loop with ``call_soon_threadsafe``. The loop holds one
batch at a time: a batch polled while the loop still dispatches the last one waits, and takes along what
came meanwhile (librdkafka keeps fetching), so under load batches grow and the loop pays per batch;
at a low rate the thread wakes once per batch, not twice. A poll returns at the first record
(``consume`` would wait for its whole count), and then takes what else is already queued without waiting.

A poll waits at most ``POLL_S``, so a command waits at most that long.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

log = logging.getLogger(__name__)

POLL_S = 0.05
MAX_BATCH = 5000  # records handed to the loop at once
RETRY_S = 0.1  # between asking a partition's end offset again after a retriable error

# A command runs on the consumer's thread; its result is then applied on the loop (before the next batch
# is dispatched there) and settles the caller's future.
Command = tuple[Callable[[Consumer], Any], Callable[[Any], None] | None, asyncio.Future[Any]]


def tail_config(bootstrap_servers: str) -> dict[str, Any]:
    """librdkafka settings of the live tail (assigned by hand: no group, no commits)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": "agentwire-edge-live-tail",  # never joined: partitions are assigned by hand
        "client.id": "agentwire-edge-live-tail",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # a fetch is answered as soon as any record is there; idle, the broker holds it 100 ms
        "fetch.wait.max.ms": 100,
        "fetch.min.bytes": 1,
        # what librdkafka may hold fetched but not yet polled (the loop is the slow side under load)
        "queued.max.messages.kbytes": 16 * 1024,
        "error_cb": _log_error,
    }


def _log_error(error: Any) -> None:
    log.warning("live tail: %s", error)


class TailConsumer:
    """A hand-assigned consumer of one topic; ``on_batch`` gets its records on the event loop."""

    def __init__(self, bootstrap_servers: str, topic: str, on_batch: Callable[[list[Message]], None]) -> None:
        self._config = tail_config(bootstrap_servers)
        self._topic = topic
        self._on_batch = on_batch
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._free = threading.Semaphore(1)  # one batch at a time in the loop's hands
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._assigned = 0

    async def start(self) -> None:
        """Start the consumer's thread; fails when the topic's metadata cannot be read."""
        self._loop = asyncio.get_running_loop()
        consumer = Consumer(self._config)
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="live-tail-kafka", daemon=True)
        self._thread.start()
        await self._call(lambda c: c.list_topics(self._topic, timeout=30))

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def assign_at_end(self, partition: int, then: Callable[[int], None]) -> int:
        """Start reading ``partition`` at its current end offset (asked of the broker), which it returns.

        ``then(end)`` runs on the loop before any record of the partition is dispatched.
        """
        def assign(consumer: Consumer) -> int:
            end = _end_offset(consumer, TopicPartition(self._topic, partition), self._spare_consumer)
            consumer.incremental_assign([TopicPartition(self._topic, partition, end)])
            self._assigned += 1
            return end

        return int(await self._call(assign, then))

    async def unassign(self, partition: int) -> None:
        """Stop reading ``partition`` (records of it already fetched may still reach ``on_batch``)."""
        def unassign(consumer: Consumer) -> None:
            consumer.incremental_unassign([TopicPartition(self._topic, partition)])
            self._assigned -= 1

        await self._call(unassign)

    def _spare_consumer(self) -> Consumer:
        """A short-lived consumer with metadata of its own, to ask an end offset the tail's handle cannot."""
        return Consumer(self._config | {"client.id": "agentwire-edge-end-offset"})

    async def _call(self, run: Callable[[Consumer], Any], then: Callable[[Any], None] | None = None) -> Any:
        if self._thread is None or self._stopping.is_set():
            raise RuntimeError("the live tail's consumer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._commands.put((run, then, future))
        return await future

    # --- the consumer's thread ---

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                if not self._run_commands(consumer, wait=self._assigned == 0):
                    continue
                message = consumer.poll(POLL_S)
                if message is None:
                    continue
                batch = [message, *consumer.consume(MAX_BATCH - 1, 0)]
                if not self._free.acquire(blocking=False):  # the loop is still dispatching the last batch
                    while not self._free.acquire(timeout=POLL_S):
                        if self._stopping.is_set():
                            return
                    if len(batch) < MAX_BATCH:  # what came meanwhile goes along
                        batch += consumer.consume(MAX_BATCH - len(batch), 0)
                if not self._post(self._dispatch, batch):
                    return
        except Exception:
            log.exception("live tail consumer failed")
            raise
        finally:
            self._fail_commands()
            consumer.close()

    def _run_commands(self, consumer: Consumer, *, wait: bool) -> bool:
        """Run the queued commands; with ``wait``, wait up to a poll's time for one. False: none came."""
        try:
            command = self._commands.get(timeout=POLL_S) if wait else self._commands.get_nowait()
        except queue.Empty:
            return not wait
        while True:
            run, then, future = command
            try:
                result = run(consumer)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                self._post(_settle, future, None, None, exc)
            else:
                self._post(_settle, future, then, result, None)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return True

    def _post(self, callback: Callable[..., None], *args: Any) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop has closed
            return False
        return True

    def _fail_commands(self) -> None:
        while True:
            try:
                _, _, future = self._commands.get_nowait()
            except queue.Empty:
                return
            self._post(_settle, future, None, None, RuntimeError("the live tail's consumer stopped"))

    # --- on the loop ---

    def _dispatch(self, batch: list[Message]) -> None:
        try:
            self._on_batch(batch)
        except Exception:
            log.exception("live tail dispatch failed")
        finally:
            self._free.release()


# what a partition's leader answers while it is being created or moved (librdkafka does not flag these as
# retriable in get_watermark_offsets' errors)
_NOT_YET = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                      KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._TRANSPORT})
RETRY_MAX_S = 1.0


def _end_offset(consumer: Consumer, tp: TopicPartition, spare: Callable[[], Consumer],
                timeout_s: float = 30.0) -> int:
    """The partition's end offset, asked of its leader; a retriable error (a new topic's partition whose
    leader the broker does not know yet: NOT_LEADER_FOR_PARTITION) is asked again until ``timeout_s``.

    ``_UNKNOWN_PARTITION`` is librdkafka's own answer, given without asking any broker, when its metadata
    cache has the partition without a usable leader (``rd_kafka_topic_partition_list_query_leaders`` takes a
    leader of -1 as final and queries nothing). A hand-assigned consumer refreshes the metadata of the
    partitions it reads, not of the one it is about to add, so after a slow broker recovery the tail's handle
    gave that answer for 30 s while every other client had the leader (librdkafka issue 5430 is the same
    family: a leader of -1 seen while a KRaft broker was fenced, never cleared). After that answer the offset
    is asked through a spare consumer from ``spare()``, whose metadata starts empty (a new one per answer,
    closed at the end); the tail's handle, once the partition is assigned, looks its leader up itself.
    """
    deadline = time.monotonic() + timeout_s
    asker, spare_in_use = consumer, None
    delay = RETRY_S
    try:
        while True:
            try:
                marks = asker.get_watermark_offsets(tp, timeout=max(deadline - time.monotonic(), 0.1))
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not isinstance(error, KafkaError) or time.monotonic() > deadline \
                        or not (error.retriable() or error.code() in _NOT_YET):
                    raise
                if error.code() == KafkaError._UNKNOWN_PARTITION:
                    if spare_in_use is None:
                        log.warning("live tail: no leader of %s[%d] in the consumer's metadata; asking a spare "
                                    "consumer", tp.topic, tp.partition)
                    else:
                        spare_in_use.close()
                    spare_in_use = asker = spare()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if marks is None:
                raise TimeoutError(f"no end offset for {tp.topic}[{tp.partition}] within {timeout_s:.0f} s")
            if spare_in_use is not None:
                log.info("live tail: end offset of %s[%d] from a spare consumer, %.1f s after asking", tp.topic,
                         tp.partition, timeout_s - (deadline - time.monotonic()))
            return int(marks[1])
    finally:
        if spare_in_use is not None:
            spare_in_use.close()


def _settle(future: asyncio.Future[Any], then: Callable[[Any], None] | None, result: Any,
            error: BaseException | None) -> None:
    if error is None and then is not None:
        then(result)
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
