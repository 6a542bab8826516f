"""What the processor does around faust's consumer: fetch tuning, a recovery guard, a fault hook.

faust-streaming 0.15.3 runs aiokafka's consumer in a thread of its own and offers no setting for
some of what the processor needs; these functions act on it at the points faust signals (an
assignment, a completed rebalance), never around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust

from agentwire.service.settings import ProcessorSettings, Settings

log = logging.getLogger(__name__)


def committed_offsets(app: faust.App) -> Callable[[Any], int | None]:
    """``tp`` -> the offset faust last sought ``tp`` to or committed, if any."""
    return lambda tp: app.consumer._committed_offset.get(tp)


def tune_fetches(app: faust.App, conf: ProcessorSettings) -> None:
    """faust builds its aiokafka consumer with a fixed fetch wait (1.5 s) and aiokafka's minimum of
    one byte, and has no setting for either; the fetcher reads both for every request it makes."""
    client = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(client, "_fetcher", None)
    if fetcher is not None:
        fetcher._fetch_min_bytes = conf.fetch_min_bytes
        fetcher._fetch_max_wait_ms = conf.fetch_max_wait_ms


def hold_flow_until_sought(app: faust.App) -> None:
    """Stop the consumer's flow until faust has sought the stream partitions (on rebalance complete).

    faust-streaming 0.15.3 completes a recovery (``Recovery.on_recovery_completed``, right after
    that signal) by resuming the stream partitions, then seeking them to their committed offsets,
    then resuming the flow, which clears every stream's queue. When the tables had to be recovered
    its fetcher is already running, so records fetched from the committed offsets in that window
    are queued, count as read, and are cleared: they never reach an agent (hundreds per partition
    after a restart with a backlog; upstream faust-streaming issues 216, 221 and 596). With the
    flow stopped, the fetcher waits; faust's own ``resume_flow`` at the end of the recovery, after
    the seek and the clearing, lets it go on from the committed offsets.
    """
    app.consumer.stop_flow()


def hold_after_seek(app: faust.App, settings: Settings) -> None:
    """The fault hook ``processor.fault_seek_hold_s`` (dev and test only): faust's recovery waits this
    long after each seek to the committed offsets, holding open the window the guard above closes."""
    seconds = settings.processor.fault_seek_hold_s
    if not settings.is_dev:
        raise ValueError(f"processor.fault_seek_hold_s is refused when ENVIRONMENT={settings.environment!r}; "
                         "it is allowed only in dev, development or test")
    log.warning("fault hook armed: recovery held %.1f s after each seek to the committed offsets", seconds)
    consumer = app.consumer
    seek = consumer.perform_seek

    async def held() -> None:
        await seek()
        await asyncio.sleep(seconds)

    consumer.perform_seek = held  # type: ignore[method-assign]
