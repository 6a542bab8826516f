"""Process lifecycle: SIGTERM/SIGINT set a stop event, the service drains and returns."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import resource
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Main = Callable[[asyncio.Event], Awaitable[None]]


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def run(main: Main, event_loop: str = "asyncio") -> None:
    """Run ``main(stop)`` on ``event_loop`` ("asyncio" or "uvloop"); SIGTERM and SIGINT set ``stop``."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        runner.run(_with_signals(main))


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor for a setting's name (None: asyncio's default)."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def _with_signals(main: Main) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await main(stop)


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event, *,
                handler_cancellation: bool = False, idle_timeout_s: float = 75.0, backlog: int = 1024,
                access_log: bool = True, exact_timers: bool = False) -> None:
    """Serve ``app`` until ``stop`` is set, then shut it down (on_shutdown, cleanup).

    ``handler_cancellation`` cancels a handler when its client disconnects (long-lived streams).
    ``idle_timeout_s`` is aiohttp's ``keepalive_timeout``: it closes a connection with no request in
    progress (idle, or still sending its head) that long after its last response or its opening.
    aiohttp's header limits stay at their defaults: request line and each header ≤ 8190 bytes, ≤ 128
    headers (400 beyond). ``backlog`` is the listen queue (aiohttp's default, 128, drops bursts).
    ``access_log``: aiohttp's line per request on the ``aiohttp.access`` logger.
    ``exact_timers``: aiohttp rounds a connection's timers longer than 5 s up to the whole second, so
    that they share wake-ups; a server holding long-lived connections opened in a burst then fires all
    their WebSocket pings in the same moment, and keeps them aligned. With it each timer keeps its time.
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0,
                           handler_cancellation=handler_cancellation, keepalive_timeout=idle_timeout_s,
                           **({"timeout_ceil_threshold": float("inf")} if exact_timers else {}),
                           **({} if access_log else {"access_log": None}))
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=backlog)
    await site.start()
    log.info("listening on http://%s:%s", host, bound_port(runner) or port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one: each client connection is a file, and
    the usual soft limit (1,024) is far below what one HTTP process serves (10,000 streams)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# glibc's mallopt parameter and its documented initial value (mallopt(3))
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_malloc_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at its initial 128 KB; False where the C library is not glibc.

    glibc raises the threshold each time a block it had mapped is freed (up to 32 MB), so once an
    aiokafka fetch buffer (up to 2 MB) has come and gone, later ones are carved out of the main heap,
    and the small objects allocated between them keep the freed space from ever being returned. Measured
    after indexing 200,000 task states (`/proc/<pid>/smaps`, docs/performance.md): the heap of ingest grew
    by 9.8 MB and of edge by 10.3 MB, and by 1.2 and 1.5 MB with the threshold fixed. Setting it turns off
    glibc's adjustment, so large blocks are mapped and unmapped each time (a few page faults per fetch).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return None
