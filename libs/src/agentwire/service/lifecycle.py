"""Process lifecycle: SIGTERM/SIGINT set a stop event, the service drains and returns."""

from __future__ import annotations

import asyncio
import logging
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
                handler_cancellation: bool = False) -> None:
    """Serve ``app`` until ``stop`` is set, then shut it down (on_shutdown, cleanup).

    ``handler_cancellation`` cancels a handler when its client disconnects (long-lived streams).
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0,
                           handler_cancellation=handler_cancellation)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("listening on http://%s:%s", host, bound_port(runner) or port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return None
