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

from agentwire.kafka.metrics import counter
from agentwire.service.settings import ProcessorSettings, Settings

log = logging.getLogger(__name__)


def committed_offsets(app: faust.App) -> Callable[[Any], int | None]:
    """``tp`` -> the offset faust last sought ``tp`` to or committed, if any."""
    return lambda tp: app.consumer._committed_offset.get(tp)


def tune_fetches(app: faust.App, conf: ProcessorSettings) -> None:
    """Make the raw topic's fetches wait for a group of records while records flow, and for the first
    one while none do.

    faust builds its aiokafka consumer with a fixed fetch wait (1.5 s) and aiokafka's minimum of one
    byte, and has no setting for either; the fetcher reads both for every request it makes, so they
    are set after each fetch (``AdaptiveFetches``). Called at every assignment; wraps once.
    """
    client = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(client, "_fetcher", None)
    if fetcher is not None and not isinstance(fetcher._proc_fetch_request, AdaptiveFetches):
        fetcher._proc_fetch_request = AdaptiveFetches(fetcher, conf)


class AdaptiveFetches:
    """Wraps aiokafka's per-request fetch (``Fetcher._proc_fetch_request``) and sets the next request's
    minimum bytes and wait from what this one brought.

    Records came (or an error to hand over): the next fetch is answered at ``fetch_min_bytes`` or after
    ``fetch_max_wait_ms``, so a stream of records arrives in groups (less CPU per event). Nothing came:
    the next one is answered at the first byte, or after ``fetch_idle_wait_ms`` — an idle worker asks
    twice a second instead of every few milliseconds (≈ 12 % of a core for nothing, docs/performance.md),
    and the first record after a quiet spell is not held back by the group wait.
    """

    def __init__(self, fetcher: Any, conf: ProcessorSettings) -> None:
        self._fetcher = fetcher
        self._fetch = fetcher._proc_fetch_request
        self._flowing = (conf.fetch_min_bytes, conf.fetch_max_wait_ms)
        self._idle = (1, conf.fetch_idle_wait_ms)
        fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms = self._idle

    async def __call__(self, assignment: Any, node_id: int, request: Any) -> bool:
        brought = bool(await self._fetch(assignment, node_id, request))
        self._fetcher._fetch_min_bytes, self._fetcher._fetch_max_wait_ms = self._flowing if brought else self._idle
        _fetches.labels("records" if brought else "empty").inc()
        return brought


_fetches = counter("agentwire_processor_fetches_total",
                   "Fetch requests for the processor's input topics, by whether they brought records", ["result"])


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
