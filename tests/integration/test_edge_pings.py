"""WebSocket pings of clients that connected in a burst are spread out, not sent all in one moment.

aiohttp rounds a connection's timers longer than 5 s up to the whole second, and pings each WebSocket
``heartbeat`` seconds after the last; clients that connected within one second were then pinged in the
same instant, every interval (1,000 pings at once cost the live events ≈ 2 ms of p99). The edge keeps
each timer's own time and draws each connection's interval from the last tenth below ``ws_ping_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.bench.feed import Feed
from tests.integration.test_edge_wire import base, start_live
from tests.support.stack import Stack

PING_S = 6.0  # above aiohttp's 5 s threshold for rounding timers
CLIENTS = 20


@pytest.fixture(scope="module")
def edge(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("edge-pings")
    stack = Stack(kafka_bootstrap, workdir, extra_env={
        "GATEWAY_SKIP_AUTH": "1", "AGENTWIRE_STREAMING__WS_PING_S": str(PING_S)})
    with stack.serving("edge", "agentwire-edge"):
        yield stack


async def test_clients_connected_together_are_pinged_at_spread_times_within_the_interval(edge: Stack) -> None:
    async with Feed(edge.bootstrap, edge.prefix) as feed:
        workflow_id = await start_live(edge, feed)
        url = f"{base(edge).replace('http', 'ws', 1)}/api/v1/stream/ws?workflow_id={workflow_id}"
        async with aiohttp.ClientSession() as http:

            async def first_ping() -> tuple[float, float]:
                async with http.ws_connect(url, autoping=False) as ws:
                    connected = time.monotonic()
                    while True:
                        message = await ws.receive(timeout=PING_S + 5)
                        if message.type == aiohttp.WSMsgType.PING:
                            return connected, time.monotonic()

            times = await asyncio.gather(*(first_ping() for _ in range(CLIENTS)))
    connected = [c for c, _ in times]
    assert max(connected) - min(connected) < 1.0, "the clients did not connect together"
    assert all(0.9 * PING_S - 0.1 <= p - c <= PING_S + 0.5 for c, p in times), [p - c for c, p in times]
    # aligned, the pings come in one or two moments (the clients' connections may straddle a whole
    # second); spread over 0.6 s, twenty fall into about fourteen moments 10 ms apart, five or fewer
    # about once in 100,000 runs
    pinged = sorted(p for _, p in times)
    moments = 1 + sum(later - earlier > 0.01 for earlier, later in zip(pinged, pinged[1:], strict=False))
    assert moments >= 6, [round(p - pinged[0], 3) for p in pinged]
