"""The processor's fetch settings follow what the last fetch brought (consumer.AdaptiveFetches)."""

from __future__ import annotations

from typing import Any

from agentwire.processor.consumer import AdaptiveFetches, tune_fetches
from agentwire.service.settings import ProcessorSettings

CONF = ProcessorSettings(fetch_min_bytes=16384, fetch_max_wait_ms=5, fetch_idle_wait_ms=500)


class Fetcher:
    """aiokafka's Fetcher as far as the wrapper sees it: two fields read per request, one method."""

    def __init__(self, results: list[bool]) -> None:
        self._fetch_min_bytes = 1
        self._fetch_max_wait_ms = 1500
        self._results = results
        self.seen: list[tuple[int, int]] = []  # the settings each request was made with

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        self.seen.append((self._fetch_min_bytes, self._fetch_max_wait_ms))
        return self._results.pop(0)


async def test_records_make_the_next_fetch_wait_for_a_group_and_nothing_for_the_first_byte() -> None:
    fetcher = Fetcher([True, True, False, False, True, False])
    adaptive = AdaptiveFetches(fetcher, CONF)
    brought = [await adaptive(None, 0, None) for _ in range(6)]
    assert brought == [True, True, False, False, True, False]
    assert fetcher.seen == [(1, 500), (16384, 5), (16384, 5), (1, 500), (1, 500), (16384, 5)]
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, 500)


def test_tune_fetches_wraps_faust_consumer_fetcher_once() -> None:
    fetcher = Fetcher([])
    consumer = type("Consumer", (), {})()
    consumer._thread = type("Thread", (), {})()
    consumer._thread._consumer = type("Client", (), {})()
    consumer._thread._consumer._fetcher = fetcher
    app: Any = type("App", (), {})()
    app.consumer = consumer
    tune_fetches(app, CONF)
    wrapped = fetcher._proc_fetch_request
    assert isinstance(wrapped, AdaptiveFetches)
    tune_fetches(app, CONF)  # a later assignment: the same wrapper, not one around it
    assert fetcher._proc_fetch_request is wrapped
