"""Prometheus metric helpers that tolerate being asked twice for the same family.

Several components of one process (the local gateway runs ingest and edge together)
may declare the same family; the first declaration wins and is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_families: dict[str, Any] = {}


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    if name not in _families:
        _families[name] = Counter(name.removesuffix("_total"), doc, list(labels))
    return _families[name]  # type: ignore[no-any-return]


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    if name not in _families:
        _families[name] = Gauge(name, doc, list(labels))
    return _families[name]  # type: ignore[no-any-return]


def histogram(name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] | None = None) -> Histogram:
    if name not in _families:
        kwargs: dict[str, Any] = {}
        if buckets is not None:
            kwargs["buckets"] = list(buckets)
        _families[name] = Histogram(name, doc, list(labels), **kwargs)
    return _families[name]  # type: ignore[no-any-return]


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
