"""Consumer lag per partition, as a gauge that a worker refreshes in the background.

``agentwire_<service>_consumer_lag{group, topic, partition}`` is the end offset of the
partition minus the group's committed offset: records written but not yet processed and
committed. It is read from the broker (the group's committed offsets through the admin API,
end offsets through an unsubscribed consumer), so it is the lag any other member or a
restarted worker would see, independent of the worker's own fetch position.

``agentwire_<service>_consumer_lag_sum{group}`` adds it up over partitions, for alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from agentwire.kafka.metrics import gauge
from agentwire.service.settings import KafkaSettings

log = logging.getLogger(__name__)


def lag_by_partition(
    committed: dict[TopicPartition, int], end: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Lag of each committed partition (never negative; a partition without an end offset is left out)."""
    return {tp: max(0, end[tp] - offset) for tp, offset in committed.items() if tp in end and offset >= 0}


class LagMonitor:
    """Refreshes the lag gauges of one consumer group every ``interval_s`` seconds.

    Only the topics of this stack (``kafka.topic_prefix``) are reported, so stacks that share
    a broker and a group name do not mix.
    """

    def __init__(self, kafka: KafkaSettings, *, service: str, group: str, interval_s: float = 5.0) -> None:
        self._kafka = kafka
        self._group = group
        self._interval_s = interval_s
        self._topics = frozenset(kafka.topics.all())
        self._lag = gauge(
            f"agentwire_{service}_consumer_lag",
            "Records not yet committed by the consumer group, per partition",
            ["group", "topic", "partition"],
        )
        self._total = gauge(
            f"agentwire_{service}_consumer_lag_sum", "Records not yet committed by the group, all partitions",
            ["group"],
        )
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def refresh(self) -> dict[TopicPartition, int]:
        """Read committed and end offsets once and set the gauges; returns the lag per partition."""
        admin, consumer = await self._clients()
        offsets = await admin.list_consumer_group_offsets(self._group)
        committed = {tp: meta.offset for tp, meta in offsets.items() if tp.topic in self._topics}
        end = await consumer.end_offsets(list(committed)) if committed else {}
        lag = lag_by_partition(committed, end)
        for tp, value in lag.items():
            self._lag.labels(self._group, tp.topic, str(tp.partition)).set(value)
        self._total.labels(self._group).set(sum(lag.values()))
        return lag

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._kafka.bootstrap_servers)
            consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka.bootstrap_servers, group_id=None)
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await consumer.stop()
                await admin.close()
                raise
            self._admin, self._offsets = admin, consumer
        return self._admin, self._offsets

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Refresh until ``stop`` is set (or the task is cancelled); broker errors are logged and retried."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except (KafkaError, OSError) as exc:
                    log.warning("consumer lag of %s not read: %s", self._group, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the admin client and the offsets consumer."""
        admin, offsets = self._admin, self._offsets
        self._admin = self._offsets = None
        if offsets is not None:
            await offsets.stop()
        if admin is not None:
            await admin.close()
