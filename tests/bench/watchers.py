"""Stream clients for the side-by-side benchmark: the same reader for the edge and for Centrifugo.

A watcher holds one SSE or WebSocket connection and counts the events it receives by a marker
both servers' frames carry once per event (``"seq":``, from the event JSON), so neither server's
framing is parsed on the hot path. In latency mode it also reads each event's send time, which
the feeder writes as the event's message, and records ``receipt - send``.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp

MARKER = b'"seq":'
SENT_AT = re.compile(rb'"message":"([0-9]+\.[0-9]+)"')


class Watcher:
    """One client connection; ``received`` counts events, ``latencies`` (sent, delay) in seconds."""

    def __init__(self, host: str, port: int, protocol: str, path: str, *, timed: bool = False) -> None:
        self.host = host
        self.port = port
        self.protocol = protocol
        self.path = path
        self.timed = timed
        self.received = 0
        self.latencies: list[tuple[float, float]] = []
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()  # the server closed the connection (or it failed)
        self._target = 0
        self._reached = asyncio.Event()

    def expect(self, count: int) -> None:
        """Arm ``reached()`` for ``count`` events received in total."""
        self._target = count
        if self.received >= count:
            self._reached.set()
        else:
            self._reached.clear()

    async def reached(self) -> None:
        """Until ``expect``'s count has arrived or the connection has ended."""
        done = asyncio.ensure_future(self._reached.wait())
        gone = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait((done, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            gone.cancel()

    def latencies_after(self, cutoff: float) -> list[float]:
        """Delays of the events sent after ``cutoff`` (epoch seconds)."""
        return [delay for sent, delay in self.latencies if sent >= cutoff]

    def _got(self, data: bytes) -> None:
        found = data.count(MARKER)
        if not found:
            return
        self.received += found
        if self.timed:
            now = time.time()
            self.latencies.extend((float(sent), now - float(sent)) for sent in SENT_AT.findall(data))
        if self._target and self.received >= self._target:
            self._reached.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Read until cancelled (or the server closes)."""
        try:
            if self.protocol == "sse":
                await self._sse()
            else:
                await self._ws(session)
        finally:
            self.ended.set()

    async def _sse(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"SSE connect refused: {head[:200]!r}")
            self.connected.set()
            pending = b""  # an unfinished frame (timed mode) or the tail a marker may straddle
            while chunk := await reader.read(262144):
                if self.timed:
                    frames, _, pending = (pending + chunk).rpartition(b"\n\n")
                    self._got(frames)
                else:
                    data = pending + chunk
                    self._got(data)
                    pending = data[-(len(MARKER) - 1):]
        finally:
            writer.close()

    async def _ws(self, session: aiohttp.ClientSession) -> None:
        url = f"ws://{self.host}:{self.port}{self.path}"
        async with session.ws_connect(url, compress=0, autoping=True, max_msg_size=0) as ws:
            self.connected.set()
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._got(message.data.encode())
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return


class Crowd:
    """Many watchers of one server, started and stopped together."""

    def __init__(self, watchers: list[Watcher]) -> None:
        self.watchers = watchers
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, timeout: float = 120.0) -> None:  # noqa: ASYNC109 - one deadline for all
        """Open every connection (at most 100 handshakes at a time)."""
        gate = asyncio.Semaphore(100)

        async def one(watcher: Watcher) -> None:
            async with gate:
                self._tasks.append(asyncio.create_task(watcher.run(self._session)))
                await watcher.connected.wait()

        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(w) for w in self.watchers))

    async def wait(self, per_client: int, timeout: float) -> None:  # noqa: ASYNC109 - the phase deadline
        """Until every watcher has received ``per_client`` events or lost its connection (``dropped``).

        Fails (with the shortfall) after ``timeout``.
        """
        for watcher in self.watchers:
            watcher.expect(per_client)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(w.reached() for w in self.watchers))
        except TimeoutError:
            short = [w.received for w in self.watchers if w.received < per_client]
            ended = sum(1 for t in self._tasks if t.done())
            raise RuntimeError(f"{len(short)} clients short of {per_client} events after {timeout}s "
                               f"(lowest {min(short, default=per_client)}; {ended} connections ended)") from None

    @property
    def dropped(self) -> int:
        """Clients whose connection ended before they had every event (the server dropped them)."""
        return sum(1 for w in self.watchers if w.ended.is_set() and w.received < w._target)

    @property
    def delivered(self) -> int:
        return sum(w.received for w in self.watchers)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()
